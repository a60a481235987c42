package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/leastloaded"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// orcaBackend reports a fixed event-loop utilization on every response,
// as the Node.js package does.
func orcaBackend(t *testing.T, name string, util float64, h2c bool) *backend {
	t.Helper()
	return startBackendProto(t, name, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(lb.ORCAHeader, fmt.Sprintf("TEXT application_utilization=%g, rps_fractional=100, named_metrics.eventloop_delay_p99_ms=3", util))
		fmt.Fprint(w, name)
	}, h2c)
}

// protocolPaths are the proxy's paths for tests that run on each: its own
// HTTP/1.1 and HTTP/2 paths, and through Go's net/http
// an HTTP/1.1 client to an h2c upstream and an h2c client to an HTTP/1.1
// upstream.
var protocolPaths = []struct {
	name  string
	proto route.Protocol
	c     func(*testing.T) *http.Client
}{
	{"HTTP/1.1", route.HTTP1, client},
	{"HTTP/2", route.HTTP2, h2cClient},
	{"HTTP/1.1 to HTTP/2", route.HTTP2, client},
	{"HTTP/2 to HTTP/1.1", route.HTTP1, h2cClient},
}

// leastLoadedCluster is a least_loaded cluster whose weights count at
// once (no blackout) and are recomputed as often as allowed.
func leastLoadedCluster(proto route.Protocol, bs ...*backend) route.ClusterConfig {
	cfg := lb.DefaultConfig()
	cfg.LeastLoaded = lb.LeastLoadedConfig{BlackoutPeriod: time.Nanosecond, WeightUpdatePeriod: lb.MinWeightUpdatePeriod}
	return route.ClusterConfig{Name: "orders", Protocol: proto, Endpoints: endpoints(bs...),
		LB: leastloaded.Builder{}, LBConfig: cfg, Outlier: route.OutlierDetection{Disabled: true}}
}

// Two instances serve the same rate, one at 90 % event-loop utilization
// and one at 10 %: once their reports are weighed, the busy one gets about
// a tenth of the requests (weights 100/0.9 and 100/0.1), and the ORCA
// header never reaches the client.
func TestLeastLoadedSendsLessToTheBusyInstance(t *testing.T) {
	for _, tc := range protocolPaths {
		t.Run(tc.name, func(t *testing.T) {
			h2 := tc.proto == route.HTTP2
			idle, busy := orcaBackend(t, "idle", 0.1, h2), orcaBackend(t, "busy", 0.9, h2)
			p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
			p.SetTable(simpleTable(t, p, leastLoadedCluster(tc.proto, idle, busy), route.Route{}))
			c := tc.c(t)
			const batch = 200
			var share float64
			eventually(t, "the busy instance gets at most a quarter of a batch", func() bool {
				from := map[string]int{}
				for range batch {
					res, err := c.Get("http://" + addr + "/")
					if err != nil {
						t.Fatalf("GET: %v", err)
					}
					res.Body.Close()
					if v := res.Header.Get(lb.ORCAHeader); v != "" {
						t.Fatalf("the client got %s: %q, want it stripped", lb.ORCAHeader, v)
					}
					from[res.Header.Get("X-Backend")]++
				}
				share = float64(from["busy"]) / batch
				return share <= 0.25
			})
			t.Logf("busy instance's share of the last %d requests: %.2f (weights 9:1 → 0.10)", batch, share)
			reported := map[string]float64{}
			for _, es := range p.Clusters()[0].Endpoints {
				if es.LoadReport != nil {
					reported[es.Address] = es.LoadReport.Utilization
				}
			}
			if reported[idle.addr()] != 0.1 || reported[busy.addr()] != 0.9 {
				t.Errorf("/clusters load reports = %v, want %s 0.1 and %s 0.9", reported, idle.addr(), busy.addr())
			}
		})
	}
}

// Inbound, the sidecar passes the app's report on: it is for the calling
// sidecar's balancer.
func TestInboundKeepsTheLoadReport(t *testing.T) {
	app := orcaBackend(t, "app", 0.3, false)
	p, addr := startProxy(t, Config{}, Mode{Kind: Inbound, Cluster: "local_app"})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "local_app", Endpoints: endpoints(app)}, route.Route{}))
	res, err := client(t).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if v := res.Header.Get(lb.ORCAHeader); v == "" {
		t.Errorf("inbound response lost %s", lb.ORCAHeader)
	}
}

// An instance whose event loop is blocked takes requests and answers none:
// least_loaded stops sending it requests once it has owed answers for a
// few of its usual times to first byte, although it holds fewer requests
// than the instance that answers (least request would keep choosing it).
func TestLeastLoadedPassesOverAnInstanceThatStoppedAnswering(t *testing.T) {
	for _, tc := range protocolPaths {
		t.Run(tc.name, func(t *testing.T) {
			blocked, free, open := blockedAndFree(t, tc.proto == route.HTTP2)
			cc := leastLoadedCluster(tc.proto, blocked, free)
			cc.Stall = route.StallDetection{Disabled: true} // the picker alone
			p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
			p.SetTable(simpleTable(t, p, cc, route.Route{}))
			c := tc.c(t)
			silent := func() bool {
				for _, e := range p.bound.Load().table.Clusters[0].LBEndpoints() {
					if e.Address == blocked.addr() {
						return e.Load.Unanswered(time.Now().UnixNano())
					}
				}
				return false
			}

			// Four callers until two requests are stuck on the blocked
			// instance (one is never enough to count as a block).
			var wg sync.WaitGroup
			var pending atomic.Int64
			t.Cleanup(wg.Wait)
			for range 4 {
				wg.Go(func() {
					for blocked.count.Load() < 2 {
						pending.Add(1)
						if res, err := c.Get("http://" + addr + "/"); err == nil {
							res.Body.Close()
						}
						pending.Add(-1)
					}
				})
			}
			// Every request of this phase still pending is on the blocked
			// instance: none is on its way there.
			eventually(t, "two requests on the blocked instance and no other pending", func() bool {
				n := blocked.count.Load()
				return n >= 2 && pending.Load() == n
			})
			eventually(t, "the blocked instance to count as not answering", silent)
			stuck := blocked.count.Load()

			// Four callers, 25 requests each.
			var callers sync.WaitGroup
			var failed atomic.Int64
			for range 4 {
				callers.Go(func() {
					for range 25 {
						if blocked.count.Load() > stuck {
							return // the test has failed; stop sending
						}
						res, err := c.Get("http://" + addr + "/")
						if err != nil || res.StatusCode != http.StatusOK || res.Header.Get("X-Backend") != "free" {
							failed.Add(1)
						}
						if err == nil {
							res.Body.Close()
						}
					}
				})
			}
			finished := waitUntil(t, "100 requests answered or one sent to the blocked instance", &callers, func() bool {
				return blocked.count.Load() > stuck
			})
			if n := blocked.count.Load() - stuck; n > 0 {
				t.Errorf("the instance that stopped answering got %d more requests", n)
			}
			open()
			<-finished
			if n := failed.Load(); n > 0 {
				t.Errorf("%d of 100 requests failed or were not answered by the free instance", n)
			}
			t.Logf("%d request(s) stuck on the blocked instance before it counted as silent", stuck)
		})
	}
}

// hedgePaths are the proxy's paths that hedge: its own HTTP/1.1 path and
// its frame-level HTTP/2 path (an h2c client to an h2c upstream, h2Fwd).
var hedgePaths = protocolPaths[:2]

// A GET already waiting on an instance that stopped answering does not
// wait out the block: once the instance counts as not answering, the GET
// goes to another instance (a hedged retry), long before the stall
// threshold (here a minute), and the blocked instance stays passed over
// while it owes the first attempt's answer. Once it answers again, no
// answer is owed any more: every first attempt's wait was ended exactly
// once.
func TestLeastLoadedHedgesGETsStuckOnASilentInstance(t *testing.T) {
	for _, tc := range hedgePaths {
		t.Run(tc.name, func(t *testing.T) {
			p, addr, blocked, _, open := startBlockedAndFree(t, tc.proto, Config{})
			c := tc.c(t)

			var callers sync.WaitGroup
			var failed, answered atomic.Int64
			for range 4 {
				callers.Go(func() {
					for range 50 {
						res, err := c.Get("http://" + addr + "/")
						if err != nil {
							failed.Add(1)
							continue
						}
						if res.StatusCode == http.StatusOK && res.Header.Get("X-Backend") == "free" {
							answered.Add(1)
						} else {
							failed.Add(1)
						}
						res.Body.Close()
					}
				})
			}
			waitUntil(t, "200 GETs answered while the blocked instance answers nothing", &callers, func() bool { return false })
			if n := blocked.count.Load(); n < 2 {
				t.Errorf("the blocked instance got %d requests, want at least 2 (the picker alone passes over it only then)", n)
			}
			if a, f := answered.Load(), failed.Load(); a != 200 || f != 0 {
				t.Errorf("%d of 200 GETs answered by the free instance, %d failed", a, f)
			}
			hedged := p.metrics.hedges.WithLabelValues("orders").Value()
			if n := float64(blocked.count.Load()); hedged != n {
				t.Errorf("hedged_requests_total = %v, want %v (every request the blocked instance got)", hedged, n)
			}
			for _, es := range p.Clusters()[0].Endpoints {
				if want := es.Address == blocked.addr(); es.Unanswered != want || es.AnswerLimit <= 0 {
					t.Errorf("/clusters endpoint %s: unanswered %v, answer limit %v; want %v and a limit", es.Address, es.Unanswered, es.AnswerLimit, want)
				}
			}
			t.Logf("the blocked instance got %d requests; every one was answered by the other", blocked.count.Load())
			open()
			eventually(t, "no answer owed and no attempt in flight once the blocked instance answers", func() bool {
				return answersSettled(p)
			})
		})
	}
}

// A POST is never hedged: waiting on an instance that stopped answering,
// it waits (here until the instance answers again; the stall threshold is
// a minute) and is sent once, while the picker passes the instance over.
func TestLeastLoadedNeverHedgesAPOST(t *testing.T) {
	for _, tc := range hedgePaths {
		t.Run(tc.name, func(t *testing.T) {
			p, addr, blocked, free, open := startBlockedAndFree(t, tc.proto, Config{})
			w := waitOutBlock(t, p, tc.c(t), addr, "POST", blocked, open)
			if hedged := p.metrics.hedges.WithLabelValues("orders").Value(); hedged != 0 {
				t.Errorf("hedged_requests_total = %v, want 0 (a POST is never sent twice)", hedged)
			}
			if n, held := w.fromBlocked, blocked.count.Load(); n != held || n < 2 {
				t.Errorf("%d POSTs answered by the blocked instance, want every one of the %d (at least 2) it held", n, held)
			}
			if got := blocked.count.Load() + free.count.Load(); got != w.sent || w.failed != 0 {
				t.Errorf("the instances got %d POSTs for %d sent (%d failed), want each sent once", got, w.sent, w.failed)
			}
			eventually(t, "no answer owed and no attempt in flight", func() bool { return answersSettled(p) })
		})
	}
}

// A GET with no retry budget left (no route retries, no connect-failure
// retries) does not leave an instance that stopped answering: a hedge it
// could not send would end it with 504, while waiting gets its answer once
// the instance runs again.
func TestLeastLoadedDoesNotHedgeWithoutARetryBudget(t *testing.T) {
	for _, tc := range hedgePaths {
		t.Run(tc.name, func(t *testing.T) {
			p, addr, blocked, _, open := startBlockedAndFree(t, tc.proto, Config{ConnectRetries: -1})
			w := waitOutBlock(t, p, tc.c(t), addr, "GET", blocked, open)
			if hedged := p.metrics.hedges.WithLabelValues("orders").Value(); hedged != 0 {
				t.Errorf("hedged_requests_total = %v, want 0 (no retry budget)", hedged)
			}
			if w.failed != 0 {
				t.Errorf("%d GETs failed, want none (they wait for the blocked instance)", w.failed)
			}
			if n, held := w.fromBlocked, blocked.count.Load(); n != held || n < 2 {
				t.Errorf("%d GETs answered by the blocked instance, want every one of the %d (at least 2) it held", n, held)
			}
			eventually(t, "no answer owed and no attempt in flight", func() bool { return answersSettled(p) })
		})
	}
}

// blockWaited is what waitOutBlock's callers saw.
type blockWaited struct{ sent, failed, fromBlocked int64 }

// waitOutBlock has eight callers send method requests until two are held
// by the blocked instance and it counts as not answering, then until the
// free one answered 100 more: a hedge would have come long before (within
// a few of its times to first byte). A caller whose request waits on the
// blocked instance stops there. Then it releases the blocked instance and
// waits for every caller's last answer.
func waitOutBlock(t *testing.T, p *Proxy, c *http.Client, addr, method string, blocked *backend, open func()) blockWaited {
	t.Helper()
	var callers sync.WaitGroup
	var sent, failed, fromBlocked, afterSilent atomic.Int64
	var silent atomic.Bool
	for range 8 {
		callers.Go(func() {
			for !silent.Load() || afterSilent.Load() < 100 {
				if blocked.count.Load() >= 2 && !silent.Load() && answersUnanswered(p, blocked.addr()) {
					silent.Store(true)
				}
				sent.Add(1)
				var body io.Reader // a GET has none
				if method == "POST" {
					body = strings.NewReader("order")
				}
				req, _ := http.NewRequest(method, "http://"+addr+"/", body)
				res, err := c.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				res.Body.Close()
				switch {
				case res.StatusCode != http.StatusOK:
					failed.Add(1)
				case res.Header.Get("X-Backend") == "blocked":
					fromBlocked.Add(1)
					return // it waited out the block: its caller stops
				case silent.Load():
					afterSilent.Add(1)
				}
			}
		})
	}
	eventually(t, "the blocked instance to hold "+method+"s and count as not answering, and 100 more answered", func() bool {
		return silent.Load() && afterSilent.Load() >= 100
	})
	open()
	waitUntil(t, "every caller's last "+method+" answered", &callers, func() bool { return false })
	return blockWaited{sent.Load(), failed.Load(), fromBlocked.Load()}
}

// Streams parked on the frame-level HTTP/2 path (the first attempts of
// hedged GETs, still waiting on the blocked instance) end when the proxy
// shuts down, and each ends its wait for the answer: none is owed after
// Shutdown, and no goroutine is left (goleak, TestMain).
func TestLeastLoadedH2ParkedStreamsEndWithTheProxy(t *testing.T) {
	p, addr, _, _, _ := startBlockedAndFree(t, route.HTTP2, Config{})
	hedgeTwoGETs(t, p, h2cClient(t), addr)
	var owed int64
	for _, e := range p.bound.Load().table.Clusters[0].LBEndpoints() {
		owed += e.Load.Waiting()
	}
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, e := range p.bound.Load().table.Clusters[0].LBEndpoints() {
		if n := e.Load.Waiting(); n != 0 {
			t.Errorf("after Shutdown %s owes %d answers, want 0", e.Address, n)
		}
	}
	t.Logf("%d answer(s) owed (parked streams) when the proxy shut down", owed)
}

// A first attempt parked by a hedge waits at most maxParked for its
// answer: then it is given up (its stream cancelled, its connection
// closed) and the instance owes nothing, although it still answers
// nothing.
func TestLeastLoadedParkedAttemptsGiveUpAfterMaxParked(t *testing.T) {
	for _, tc := range hedgePaths {
		t.Run(tc.name, func(t *testing.T) {
			p, addr, _, _, _ := startBlockedAndFree(t, tc.proto, Config{})
			hedgeTwoGETs(t, p, tc.c(t), addr)
			eventually(t, "the parked attempts given up while the instance answers nothing", func() bool {
				return answersSettled(p)
			})
		})
	}
}

// startBlockedAndFree starts a blocked and a free instance
// (blockedAndFree) of proto behind a proxy whose least_loaded cluster has
// a one-minute stall threshold: only a hedge takes a request off the
// blocked one in time.
func startBlockedAndFree(t *testing.T, proto route.Protocol, cfg Config) (p *Proxy, addr string, blocked, free *backend, open func()) {
	t.Helper()
	blocked, free, open = blockedAndFree(t, proto == route.HTTP2)
	cc := leastLoadedCluster(proto, blocked, free)
	cc.Stall = route.StallDetection{Min: time.Minute, Max: time.Minute}
	p, addr = startProxy(t, cfg, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, cc, route.Route{}))
	return p, addr, blocked, free, open
}

// hedgeTwoGETs sends GETs from four callers until two were hedged.
func hedgeTwoGETs(t *testing.T, p *Proxy, c *http.Client, addr string) {
	t.Helper()
	var callers sync.WaitGroup
	for range 4 {
		callers.Go(func() {
			for p.metrics.hedges.WithLabelValues("orders").Value() < 2 {
				if res, err := c.Get("http://" + addr + "/"); err == nil {
					res.Body.Close()
				}
			}
		})
	}
	waitUntil(t, "two GETs hedged", &callers, func() bool { return false })
}

// answersUnanswered reports whether the endpoint at addr of the proxy's
// first cluster counts as not answering (lb.Load.Unanswered).
func answersUnanswered(p *Proxy, addr string) bool {
	for _, e := range p.bound.Load().table.Clusters[0].LBEndpoints() {
		if e.Address == addr {
			return e.Load.Unanswered(time.Now().UnixNano())
		}
	}
	return false
}

// answersSettled reports whether no endpoint of the proxy's first cluster
// owes an answer (lb.Load.Waiting: every Sent was paired with its
// Answered) and /clusters shows no request or attempt in flight on it.
func answersSettled(p *Proxy) bool {
	for _, e := range p.bound.Load().table.Clusters[0].LBEndpoints() {
		if e.Load.Waiting() != 0 {
			return false
		}
	}
	for _, es := range p.Clusters()[0].Endpoints {
		if es.InFlight != 0 || es.Attempts != 0 {
			return false
		}
	}
	return true
}

// blockedAndFree starts two backends: blocked holds every request until
// open is called (a blocked event loop; at the latest at cleanup), free
// answers each after 2 ms, so that with a few callers it has requests in
// flight.
func blockedAndFree(t *testing.T, h2c bool) (blocked, free *backend, open func()) {
	t.Helper()
	gate := make(chan struct{})
	var release sync.Once
	open = func() { release.Do(func() { close(gate) }) }
	blocked = startBackendProto(t, "blocked", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-gate:
		case <-r.Context().Done():
		}
	}, h2c)
	free = startBackendProto(t, "free", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond) // service time, not synchronisation
	}, h2c)
	t.Cleanup(open) // before the backends close (cleanups run last first)
	return blocked, free, open
}

// waitUntil waits until wg is done or stop holds, and returns a channel
// closed once wg is done.
func waitUntil(t *testing.T, what string, wg *sync.WaitGroup, stop func() bool) <-chan struct{} {
	t.Helper()
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	eventually(t, what, func() bool {
		select {
		case <-finished:
			return true
		default:
			return stop()
		}
	})
	return finished
}
