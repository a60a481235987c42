package proxy

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/shoal-mesh/shoal/internal/metric"
	"github.com/shoal-mesh/shoal/sidecar/accesslog"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// breakerSample returns the value of a circuit-breaker gauge of cluster
// for resource, and whether the series exists.
func breakerSample(reg *metric.Registry, family, cluster, resource string) (float64, bool) {
	for _, f := range reg.Gather() {
		if f.Name != family {
			continue
		}
		for _, s := range f.Samples {
			// Labels sorted by name: cluster, resource.
			if s.LabelValues[0] == cluster && s.LabelValues[1] == resource {
				return s.Value, true
			}
		}
	}
	return 0, false
}

// gate is a backend handler that holds requests on /hold until opened.
type gate struct {
	open chan struct{}
	once sync.Once
}

func newGate(t *testing.T) *gate {
	g := &gate{open: make(chan struct{})}
	t.Cleanup(g.release)
	return g
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// A route's max_connections (issue 17): with the cluster's one connection
// held by a request, another request is refused at once with 503 and the
// overflow flag (the proxy queues nothing); once the connection is idle, a
// request to the other endpoint closes it to make room. /clusters and the
// breaker metrics show the limit and the use.
func TestMaxConnections(t *testing.T) {
	g := newGate(t)
	held := make(chan struct{}, 1)
	h := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			held <- struct{}{}
			<-g.open
		}
		w.Write([]byte("ok"))
	}
	a, b := startBackend(t, "a", h), startBackend(t, "b", h)
	reg := metric.NewRegistry()
	logger, logs := startAccessLog(t, accesslog.Text)
	p, addr := startProxy(t, Config{Registerer: reg, AccessLog: logger}, Mode{})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "orders", Endpoints: endpoints(a, b), MaxConnections: 1}, route.Route{}))
	c := client(t)

	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+addr+"/hold", nil)
		req.Host = "orders"
		res, err := c.Do(req)
		if err != nil {
			done <- 0
			return
		}
		res.Body.Close()
		done <- res.StatusCode
	}()
	<-held
	code, _, body := get(t, c, addr, "orders", "/second")
	if code != 503 || !strings.Contains(body, "connection limit") {
		t.Errorf("second request while the only connection is busy: %d %q, want 503 connection limit", code, body)
	}
	st := p.Clusters()[0]
	if st.MaxConnections != 1 || st.Connections != 1 {
		t.Errorf("/clusters max_connections %d connections %d, want 1 and 1", st.MaxConnections, st.Connections)
	}
	if v, ok := breakerSample(reg, "shoal_sidecar_circuit_breaker_in_use", "orders", "connections"); !ok || v != 1 {
		t.Errorf("in_use connections = %v (present %v), want 1", v, ok)
	}
	if v, _ := breakerSample(reg, "shoal_sidecar_circuit_breaker_limit", "orders", "connections"); v != 1 {
		t.Errorf("limit connections = %v, want 1", v)
	}
	g.release()
	if code := <-done; code != 200 {
		t.Fatalf("held request: %d, want 200", code)
	}
	// The proxy pools a connection just after its response went out.
	idle := func() {
		eventually(t, "the connection back in its pool", func() bool {
			for _, e := range p.Clusters()[0].Endpoints {
				if e.IdleConns == 1 {
					return true
				}
			}
			return false
		})
	}
	// With the connection idle, requests to either endpoint succeed, a
	// dial to the other one closing the idle connection first.
	for i := range 6 {
		idle()
		if code, _, _ := get(t, c, addr, "orders", "/"); code != 200 {
			t.Fatalf("request %d after the hold: %d, want 200", i, code)
		}
		if n := p.Clusters()[0].Connections; n > 1 {
			t.Fatalf("request %d: %d connections open, over the limit of 1", i, n)
		}
	}
	if a.count.Load() < 2 || b.count.Load() < 2 {
		t.Errorf("requests per endpoint a=%d b=%d, want both used", a.count.Load(), b.count.Load())
	}
	eventually(t, "the overflow in the access log", func() bool { return strings.Contains(logs.String(), " UO ") })
}

// A route's max_retries (issue 17): with one retry in flight in the
// cluster, another request that fails is not retried (its 503 is relayed);
// once the first is done, retries work again.
func TestMaxRetries(t *testing.T) {
	g := newGate(t)
	var mu sync.Mutex
	seen := map[string]int{}
	retrying := make(chan struct{}, 1)
	h := func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Id")
		mu.Lock()
		seen[id]++
		n := seen[id]
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(503) // every request fails its first attempt
			return
		}
		if id == "held" {
			retrying <- struct{}{}
			<-g.open
		}
		w.Write([]byte("retried"))
	}
	a, b := startBackend(t, "a", h), startBackend(t, "b", h)
	p, addr := startProxy(t, Config{}, Mode{})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "orders", Endpoints: endpoints(a, b), MaxRetries: 1},
		route.Route{Retry: &route.RetryPolicy{On: route.Retry5xx, NumRetries: 1}}))
	c := client(t)

	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Host, req.Header = "orders", http.Header{"X-Id": {"held"}}
		res, err := c.Do(req)
		if err != nil {
			done <- 0
			return
		}
		res.Body.Close()
		done <- res.StatusCode
	}()
	<-retrying
	if st := p.Clusters()[0]; st.MaxRetries != 1 || st.RetriesInFlight != 1 {
		t.Errorf("/clusters max_retries %d retries_in_flight %d, want 1 and 1", st.MaxRetries, st.RetriesInFlight)
	}
	if code, _, _ := get(t, c, addr, "orders", "/", "X-Id", "overflow"); code != 503 {
		t.Errorf("a failing request while the retry slot is taken: %d, want its 503", code)
	}
	mu.Lock()
	if n := seen["overflow"]; n != 1 {
		t.Errorf("the request over max_retries was sent %d times, want once", n)
	}
	mu.Unlock()
	g.release()
	if code := <-done; code != 200 {
		t.Fatalf("held request: %d, want 200 after its retry", code)
	}
	// The slot is given back just after the response went out.
	eventually(t, "the retry slot given back", func() bool { return p.Clusters()[0].RetriesInFlight == 0 })
	if code, _, body := get(t, c, addr, "orders", "/", "X-Id", "after"); code != 200 || body != "retried" {
		t.Errorf("a failing request once the slot is free: %d %q, want 200 retried", code, body)
	}
	eventually(t, "no retry in flight once every request ended", func() bool { return p.Clusters()[0].RetriesInFlight == 0 })
}

// A service whose instances are all unhealthy is answered 503 "no healthy
// upstream" (access-log flag UH), as Envoy answers, on every path: an
// HTTP/1.1 or h2c client, an HTTP/1.1 or h2c upstream.
func TestNoHealthyUpstreamIs503(t *testing.T) {
	up := startH2CBackend(t, "up", nil)
	down := []route.Endpoint{{Address: up.addr(), Healthy: false}}
	for _, tc := range protocolPaths {
		t.Run(tc.name, func(t *testing.T) {
			p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
			p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "svc", Protocol: tc.proto, Endpoints: down}, route.Route{}))
			if code, _, body := get(t, tc.c(t), addr, "svc", "/"); code != 503 || !strings.Contains(body, "no healthy upstream") {
				t.Errorf("got %d %q, want 503 no healthy upstream", code, body)
			}
		})
	}
	if n := up.count.Load(); n != 0 {
		t.Errorf("the unhealthy instance got %d requests", n)
	}
}
