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
	for _, tc := range []struct {
		name  string
		proto route.Protocol
		c     func(*testing.T) *http.Client
	}{
		{"HTTP/1.1", route.HTTP1, client},
		{"HTTP/2", route.HTTP2, h2cClient},
		// Through Go's net/http: an HTTP/1.1 client to an h2c upstream, an
		// h2c client to an HTTP/1.1 upstream.
		{"HTTP/1.1 to HTTP/2", route.HTTP2, client},
		{"HTTP/2 to HTTP/1.1", route.HTTP1, h2cClient},
	} {
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
	for _, tc := range []struct {
		name  string
		proto route.Protocol
		c     func(*testing.T) *http.Client
	}{
		{"HTTP/1.1", route.HTTP1, client},
		{"HTTP/2", route.HTTP2, h2cClient},
		{"HTTP/1.1 to HTTP/2", route.HTTP2, client},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h2 := tc.proto == route.HTTP2
			gate := make(chan struct{})
			var release sync.Once
			open := func() { release.Do(func() { close(gate) }) }
			blocked := startBackendProto(t, "blocked", func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-gate:
				case <-r.Context().Done():
				}
			}, h2)
			// The answering instance holds each request a little, so that
			// with four callers it has more in flight than the blocked one.
			free := startBackendProto(t, "free", func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(2 * time.Millisecond) // service time, not synchronisation
			}, h2)
			t.Cleanup(open) // before the backends close (cleanups run last first)
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

			// Requests one after another until one is stuck on the blocked
			// instance; each caller waits for its answer or for that.
			var wg sync.WaitGroup
			t.Cleanup(wg.Wait)
			for blocked.count.Load() == 0 {
				done := make(chan struct{})
				wg.Go(func() {
					defer close(done)
					if res, err := c.Get("http://" + addr + "/"); err == nil {
						res.Body.Close()
					}
				})
				eventually(t, "an answer or a request on the blocked instance", func() bool {
					select {
					case <-done:
						return true
					default:
						return blocked.count.Load() > 0
					}
				})
			}
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
			finished := make(chan struct{})
			go func() { callers.Wait(); close(finished) }()
			eventually(t, "100 requests answered or one sent to the blocked instance", func() bool {
				select {
				case <-finished:
					return true
				default:
					return blocked.count.Load() > stuck
				}
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
