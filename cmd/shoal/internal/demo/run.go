package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

func (m *mesh) scenarios(ctx context.Context) error {
	m.printf("applying routes: rr.demo (round robin), lc.demo (least connections), iphash.demo (IP hash), user.demo (hash on header x-user) ... ")
	if err := m.applyRoutes(ctx); err != nil {
		return err
	}
	for _, host := range []string{"rr.demo", "lc.demo", "iphash.demo", "user.demo"} {
		if err := m.waitRouted(ctx, host); err != nil {
			return err
		}
	}
	m.printf("ok\n")
	n := m.cfg.Requests

	res := m.run(ctx, load{host: "rr.demo", requests: n})
	m.table("round robin — Host: rr.demo", res, "every instance gets the same share")

	res = m.run(ctx, load{host: "lc.demo", requests: n})
	m.table(fmt.Sprintf("least connections — Host: lc.demo (%s answers in %s, the others at once)", m.appIDs[len(m.appIDs)-1], slowDelay),
		res, "the slow instance holds requests longer, so it is sent fewer")

	res = m.run(ctx, load{host: "iphash.demo", requests: n, clientIPs: true})
	s, k, owners := sticky(res)
	m.table(fmt.Sprintf("IP hash — Host: iphash.demo, %d clients on 127.0.0.10-%d", m.cfg.Concurrency, 9+m.cfg.Concurrency),
		res, fmt.Sprintf("%d of %d client IPs always reached the same instance (clients per instance: %s)", s, k, formatOwners(owners)))

	res = m.run(ctx, load{host: "user.demo", requests: n, users: 30})
	s, k, owners = sticky(res)
	m.table("consistent hash on header x-user — Host: user.demo, 30 users", res,
		fmt.Sprintf("%d of %d users always reached the same instance (users per instance: %s)", s, k, formatOwners(owners)))

	if err := m.authorization(ctx); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return m.failover(ctx)
}

// The demo's identities (trust domain shoal.local, namespace default).
const (
	gatewayID = "spiffe://shoal.local/ns/default/svc/gateway"
	batchID   = "spiffe://shoal.local/ns/default/svc/batch"
)

// authorization shows mTLS between the sidecars and a policy at work: web
// accepts the gateway only, so the batch caller, authenticated as well,
// is denied by web's inbound sidecars while the gateway's requests pass.
func (m *mesh) authorization(ctx context.Context) error {
	m.printf("\nmTLS and authorization\n")
	m.printf("  every sidecar and the gateway have an X.509 SVID from the control plane's dev CA; web's sidecars take mTLS only\n")
	code, caller, _ := m.call(ctx, "http://"+m.gwAddr+"/", "rr.demo")
	m.printf("  gateway → web over mTLS: %d; the app saw x-forwarded-client-cert: %s\n", code, caller)
	code, _, _ = m.call(ctx, "http://"+m.batchAddr+"/", "")
	m.printf("  batch   → web over mTLS: %d (no policy yet: default allow)\n", code)

	m.printf("  applying policy web-callers: web accepts %s only ... ", gatewayID)
	conn, err := grpc.NewClient(m.cp.Addrs().API, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = shoalv1.NewPolicyServiceClient(conn).CreatePolicy(ctx, &shoalv1.CreatePolicyRequest{Policy: &shoalv1.AuthorizationPolicy{
		Name: "web-callers", Service: "web", Rules: []*shoalv1.AuthorizationRule{{Callers: []string{gatewayID}}},
	}})
	if err != nil {
		return fmt.Errorf("demo: create policy web-callers: %w", err)
	}
	// Every web sidecar enforces it once its xDS update is in: poll until
	// a round of calls from batch (one per instance) is denied.
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var body string
	for denied := 0; denied < len(m.appIDs); {
		code, _, body = m.call(wctx, "http://"+m.batchAddr+"/", "")
		if code == http.StatusForbidden {
			denied++
			continue
		}
		denied = 0
		select {
		case <-wctx.Done():
			return fmt.Errorf("demo: batch is not denied by the policy (last answer %d %q): %w", code, body, wctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	m.printf("ok\n")
	code, _, _ = m.call(ctx, "http://"+m.gwAddr+"/", "rr.demo")
	m.printf("  gateway → web over mTLS: %d (allowed)\n", code)
	m.printf("  batch   → web over mTLS: %d %s (denied by web's inbound sidecar: %s)\n", http.StatusForbidden,
		http.StatusText(http.StatusForbidden), strings.TrimSpace(body))
	return nil
}

// call sends one GET to url (with Host host, if set) and returns the
// status (0 on a transport error), the caller the app saw (x-caller) and
// the body.
func (m *mesh) call(ctx context.Context, url, host string) (int, string, string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, resp.Header.Get("x-caller"), string(b)
}

// failover kills one instance (kill -9 of its Node.js process) under round
// robin load and reports errors and how fast it left the rotation.
func (m *mesh) failover(ctx context.Context) error {
	victim := m.appIDs[0]
	m.printf("\nfailover: round robin load for 4s; kill -9 %s after 1s ...\n", victim)
	var killedAt time.Time
	ejected := make(chan time.Duration, 1)
	go func() {
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return
		}
		killedAt = time.Now()
		m.apps[0].Process.Signal(syscall.SIGKILL)
		ejected <- m.timeToEject(ctx, m.inAddrs[0], killedAt)
	}()
	res := m.run(ctx, load{host: "rr.demo", duration: 4 * time.Second})
	m.table("round robin while "+victim+" crashes", res, "")
	if killedAt.IsZero() {
		return ctx.Err()
	}
	last := res.lastSeen[victim]
	out := "no request reached it after the kill"
	if last.After(killedAt) {
		out = fmt.Sprintf("last request answered by it %s after the kill (in flight or accepted just before it died)", last.Sub(killedAt).Round(time.Millisecond))
	}
	m.printf("  %d errors out of %d requests; %s.\n", res.errors, res.total, out)
	if d := <-ejected; d > 0 {
		m.printf("  the gateway took %s out of rotation %s after the kill.\n", victim, d.Round(time.Millisecond))
	}
	m.printf("  the sidecars retried on other instances, ejected the dead one, and gossip took it out of every rotation.\n")
	return nil
}

// waitRouted waits until the gateway routes host to an instance.
func (m *mesh) waitRouted(ctx context.Context, host string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.gwAddr+"/", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && resp.Header.Get("x-instance") != "" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: gateway does not route %s yet: %w", host, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (m *mesh) printKeep() {
	a := m.cp.Addrs()
	m.printf(`
The mesh keeps running (--keep) with light traffic on every route; Ctrl-C stops it.
  dashboard: http://%[3]s/ui/
  curl -H 'Host: rr.demo' http://%[1]s/
  curl -H 'Host: user.demo' -H 'x-user: alice' http://%[1]s/
  curl http://%[4]s/    # batch → web over mTLS: 403 (policy web-callers)
  shoal policies list --api %[2]s
  shoal top --api %[2]s
  shoal status --api %[2]s
  shoal routes list --api %[2]s
  shoal instances web --api %[2]s
`, m.gwAddr, a.API, a.Admin, m.batchAddr)
}

// timeToEject polls the gateway's /clusters until addr is unhealthy or
// ejected in the web cluster, and returns how long after since it took
// (0 if it did not happen within 5s).
func (m *mesh) timeToEject(ctx context.Context, addr string, since time.Time) time.Duration {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if m.outOfRotation(addr) {
			return time.Since(since)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0
}

func (m *mesh) outOfRotation(addr string) bool {
	resp, err := http.Get("http://" + m.gwAdmin + "/clusters")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var clusters []struct {
		Name      string
		Endpoints []struct {
			Address          string
			Healthy, Ejected bool
		}
	}
	if json.NewDecoder(resp.Body).Decode(&clusters) != nil {
		return false
	}
	for _, c := range clusters {
		if c.Name != "web" {
			continue
		}
		for _, e := range c.Endpoints {
			if e.Address == addr {
				return !e.Healthy || e.Ejected
			}
		}
		return true // gone from the cluster
	}
	return false
}
