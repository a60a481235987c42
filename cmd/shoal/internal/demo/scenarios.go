package demo

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// routes are the demo's example routes, one host per strategy.
func routes() []*shoalv1.Route {
	rule := func(s shoalv1.Strategy, hk *shoalv1.HashKey) []*shoalv1.Rule {
		return []*shoalv1.Rule{{Destinations: []*shoalv1.Destination{{Service: "web"}}, Strategy: s, HashKey: hk,
			Retry: &shoalv1.RetryPolicy{Attempts: 2, RetryOn: []string{"connect-failure", "reset", "gateway-error"}}}}
	}
	return []*shoalv1.Route{
		{Name: "demo-rr", Hosts: []string{"rr.demo"}, Rules: rule(shoalv1.Strategy_STRATEGY_ROUND_ROBIN, nil)},
		{Name: "demo-lc", Hosts: []string{"lc.demo"}, Rules: rule(shoalv1.Strategy_STRATEGY_LEAST_REQUEST, nil)},
		{Name: "demo-iphash", Hosts: []string{"iphash.demo"}, Rules: rule(shoalv1.Strategy_STRATEGY_IP_HASH, nil)},
		{Name: "demo-userhash", Hosts: []string{"user.demo"}, Rules: rule(shoalv1.Strategy_STRATEGY_RING_HASH,
			&shoalv1.HashKey{Key: &shoalv1.HashKey_Header{Header: "x-user"}})},
	}
}

func (m *mesh) applyRoutes(ctx context.Context) error {
	conn, err := grpc.NewClient(m.cp.Addrs().API, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rc := shoalv1.NewRouteServiceClient(conn)
	for _, r := range routes() {
		if _, err := rc.CreateRoute(ctx, &shoalv1.CreateRouteRequest{Route: r}); err != nil {
			return fmt.Errorf("demo: create route %s: %w", r.GetName(), err)
		}
	}
	return nil
}

// result counts the answers of one load run.
type result struct {
	mu       sync.Mutex
	total    int
	errors   int
	byInst   map[string]int
	byKey    map[string]map[string]int // key (client IP or user) -> instance -> count
	lastSeen map[string]time.Time
}

func newResult() *result {
	return &result{byInst: map[string]int{}, byKey: map[string]map[string]int{}, lastSeen: map[string]time.Time{}}
}

func (r *result) add(inst, key string, err bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	if err {
		r.errors++
		return
	}
	r.byInst[inst]++
	r.lastSeen[inst] = time.Now()
	if key != "" {
		if r.byKey[key] == nil {
			r.byKey[key] = map[string]int{}
		}
		r.byKey[key][inst]++
	}
}

// load is one traffic run through the gateway.
type load struct {
	host     string
	requests int           // stop after this many (0: until duration)
	duration time.Duration // stop after this long (0: until requests)
	// clientIP makes worker w connect from 127.0.0.(10+w) so IP hash sees
	// different clients.
	clientIPs bool
	// users sets x-user to one of this many users.
	users int
}

func (m *mesh) run(ctx context.Context, l load) *result {
	res := newResult()
	var sent atomic.Int64
	deadline := time.Now().Add(l.duration)
	var wg sync.WaitGroup
	for w := range m.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client, ip := m.client(w, l.clientIPs)
			defer client.CloseIdleConnections()
			for i := 0; ctx.Err() == nil; i++ {
				if l.requests > 0 && sent.Add(1) > int64(l.requests) {
					return
				}
				if l.duration > 0 && time.Now().After(deadline) {
					return
				}
				key := ""
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.gwAddr+"/", nil)
				req.Host = l.host
				if l.users > 0 {
					key = fmt.Sprintf("user-%02d", (w*7919+i)%l.users)
					req.Header.Set("x-user", key)
				} else if l.clientIPs {
					key = ip
				}
				resp, err := client.Do(req)
				if err != nil {
					res.add("", key, true)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				res.add(resp.Header.Get("x-instance"), key, resp.StatusCode != http.StatusOK)
			}
		}()
	}
	wg.Wait()
	return res
}

func (m *mesh) client(w int, clientIP bool) (*http.Client, string) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	ip := "127.0.0.1"
	if clientIP {
		ip = fmt.Sprintf("127.0.0.%d", 10+w)
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(ip)}
	}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 1, IdleConnTimeout: 30 * time.Second}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}, ip
}

func (m *mesh) table(title string, res *result, note string) {
	m.printf("\n%s\n", title)
	tw := tabwriter.NewWriter(m.cfg.Out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\t")
	for _, id := range m.appIDs {
		fmt.Fprintf(tw, "%s\t", id)
	}
	fmt.Fprintf(tw, "errors\t\n")
	fmt.Fprintf(tw, "%d requests\t", res.total)
	for _, id := range m.appIDs {
		fmt.Fprintf(tw, "%d (%.0f%%)\t", res.byInst[id], 100*float64(res.byInst[id])/float64(max(res.total, 1)))
	}
	fmt.Fprintf(tw, "%d\t\n", res.errors)
	tw.Flush()
	if note != "" {
		m.printf("  %s\n", note)
	}
}

// sticky reports how many keys always went to the same instance, and how
// many keys each instance owns.
func sticky(res *result) (stickyKeys, keys int, owners map[string]int) {
	owners = map[string]int{}
	for _, byInst := range res.byKey {
		keys++
		if len(byInst) == 1 {
			stickyKeys++
		}
		best, bestN := "", -1
		for inst, n := range byInst {
			if n > bestN {
				best, bestN = inst, n
			}
		}
		owners[best]++
	}
	return stickyKeys, keys, owners
}

func formatOwners(owners map[string]int) string {
	ids := make([]string, 0, len(owners))
	for id := range owners {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	parts := make([]string, 0, len(ids))
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("%s: %d", id, owners[id]))
	}
	return strings.Join(parts, ", ")
}

// trickle keeps light traffic (about 20 requests a second) on every demo
// host until ctx is done, so that the dashboard and `shoal top` show each
// strategy at work while the mesh is kept running.
func (m *mesh) trickle(ctx context.Context) {
	hosts := []load{{host: "rr.demo"}, {host: "lc.demo"}, {host: "iphash.demo", clientIPs: true}, {host: "user.demo", users: 30}}
	clients := make([]*http.Client, 8)
	for w := range clients {
		clients[w], _ = m.client(w, true)
		defer clients[w].CloseIdleConnections()
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l := hosts[i%len(hosts)]
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.gwAddr+"/", nil)
		req.Host = l.host
		if l.users > 0 {
			req.Header.Set("x-user", fmt.Sprintf("user-%02d", i%l.users))
		}
		client := clients[0]
		if l.clientIPs {
			client = clients[(i/len(hosts))%len(clients)]
		}
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}
