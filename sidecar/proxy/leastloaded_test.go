package proxy

import (
	"fmt"
	"net/http"
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

// leastLoadedPaths are the proxy's paths a least_loaded cluster is
// tested on: its own HTTP/1.1 and HTTP/2 paths, and through Go's net/http
// an HTTP/1.1 client to an h2c upstream and an h2c client to an HTTP/1.1
// upstream.
var leastLoadedPaths = []struct {
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
	for _, tc := range leastLoadedPaths {
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
	for _, tc := range leastLoadedPaths {
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

// A GET already waiting on an instance that stopped answering does not
// wait out the block: once the instance counts as not answering, the GET
// goes to another instance (a hedged retry), long before the stall
// threshold (here a minute), and the blocked instance stays passed over
// while it owes the first attempt's answer.
func TestLeastLoadedHedgesGETsStuckOnASilentInstance(t *testing.T) {
	blocked, free, open := blockedAndFree(t, false)
	cc := leastLoadedCluster(route.HTTP1, blocked, free)
	cc.Stall = route.StallDetection{Min: time.Minute, Max: time.Minute}
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, cc, route.Route{}))
	c := client(t)

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
