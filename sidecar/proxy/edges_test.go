package proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shoal-mesh/shoal/internal/metric"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// scrapeRegistry reads reg as Prometheus does (its text parser).
func scrapeRegistry(t *testing.T, reg *metric.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	reg.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	tp := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := tp.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// series maps each series of name, as "label=value,…" (sorted by label
// name), to its value (a histogram's sample count).
func series(fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range fams[name].GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		v := m.GetCounter().GetValue()
		if h := m.GetHistogram(); h != nil {
			v = float64(h.GetSampleCount())
		}
		out[strings.Join(ls, ",")] = v
	}
	return out
}

// Every request the proxy sends is counted on its edge (source service →
// destination service → route, by status code) and timed, over HTTP/1.1
// and h2c (frame to frame, and through net/http transports); requests that reach the app through the inbound listener are
// not (the caller counts them), and a request without a route is counted
// with destination and route "-".
func TestEdgeMetricsCountTheRequestsSent(t *testing.T) {
	reg := metric.NewRegistry()
	p, addr := startProxy(t, Config{Registerer: reg, Service: "web"}, Mode{Kind: Outbound})
	inbound := serve(t, p, Mode{Kind: Inbound, Cluster: "orders/least_request"})
	be := startH2CBackend(t, "orders", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/fail") {
			w.WriteHeader(503)
		}
	})
	tbl, err := route.New(route.Config{
		VirtualHosts: []route.VirtualHost{{Name: "orders", Domains: []string{"orders"}, Routes: []route.Route{
			{Name: "orders-api/0", Match: route.Match{PathPrefix: "/api"}, Clusters: one("orders/least_request")},
			{Name: "orders/0", Match: route.Match{PathPrefix: "/"}, Clusters: one("orders/least_request")},
		}}, {Name: "grpc", Domains: []string{"grpc"}, Routes: []route.Route{
			{Name: "grpc/0", Match: route.Match{PathPrefix: "/"}, Clusters: one("grpc")},
		}}},
		Clusters: []route.ClusterConfig{{Name: "orders/least_request", Endpoints: endpoints(be)},
			{Name: "grpc", Protocol: route.HTTP2, Endpoints: endpoints(be)}},
		Loads: p.Loads(),
	})
	if err != nil {
		t.Fatal(err)
	}
	p.SetTable(tbl)

	c, h2c := client(t), h2cClient(t)
	sent := []struct {
		c          *http.Client
		addr, host string
		path       string
		n          int
		want       int
	}{
		{c, addr, "orders", "/api/x", 7, 200},
		{c, addr, "orders", "/fail", 3, 503},
		{h2c, addr, "orders", "/api/y", 5, 200},
		{c, addr, "nosuch", "/", 2, 404},
		{h2c, addr, "grpc", "/x", 6, 200}, // HTTP/2 frames end to end
		{h2c, addr, "grpc", "/fail", 1, 503},
		{c, addr, "grpc", "/y", 2, 200},          // HTTP/1.1 to an h2c upstream
		{c, inbound, "orders", "/api/z", 4, 200}, // not an edge of web's
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for _, s := range sent {
		for range s.n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("GET", "http://"+s.addr+s.path, nil)
				req.Host = s.host
				resp, err := s.c.Do(req)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != s.want {
					errs <- fmt.Errorf("GET %s%s: %d, want %d", s.host, s.path, resp.StatusCode, s.want)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	wantCounts := map[string]float64{
		"code=200,destination=orders,route=orders-api/0,source=web": 12,
		"code=503,destination=orders,route=orders/0,source=web":     3,
		"code=404,destination=-,route=-,source=web":                 2,
		"code=200,destination=grpc,route=grpc/0,source=web":         8,
		"code=503,destination=grpc,route=grpc/0,source=web":         1,
	}
	wantHist := map[string]float64{
		"destination=orders,route=orders-api/0,source=web": 12,
		"destination=orders,route=orders/0,source=web":     3,
		"destination=-,route=-,source=web":                 2,
		"destination=grpc,route=grpc/0,source=web":         9,
	}
	// A request is counted as its response completes: the client may
	// see the last byte a moment before.
	var counts, hist map[string]float64
	for deadline := time.Now().Add(defaultTestTimeout); ; time.Sleep(time.Millisecond) {
		fams := scrapeRegistry(t, reg)
		counts, hist = series(fams, "shoal_requests_total"), series(fams, "shoal_request_duration_seconds")
		if equalCounts(counts, wantCounts) && equalCounts(hist, wantHist) || time.Now().After(deadline) {
			break
		}
	}
	if !equalCounts(counts, wantCounts) {
		t.Errorf("shoal_requests_total = %v\nwant %v", counts, wantCounts)
	}
	if !equalCounts(hist, wantHist) {
		t.Errorf("shoal_request_duration_seconds counts = %v\nwant %v", hist, wantHist)
	}
}

func equalCounts(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Past maxEdges (destination, route) pairs, new routes share the series
// of route "other": the series stay bounded whatever the configuration
// churns through.
func TestEdgeSeriesAreBounded(t *testing.T) {
	reg := metric.NewRegistry()
	p, err := New(Config{Registerer: reg, Service: "web"})
	if err != nil {
		t.Fatal(err)
	}
	ec := edgeCache{em: p.metrics.edges, destination: "orders"}
	for i := range maxEdges + 50 {
		ec.edge(fmt.Sprintf("r%d/0", i)).observe(200, 0.001)
	}
	got := series(scrapeRegistry(t, reg), "shoal_requests_total")
	if len(got) != maxEdges+1 {
		t.Errorf("%d series, want %d", len(got), maxEdges+1)
	}
	if n := got["code=200,destination=orders,route=other,source=web"]; n != 50 {
		t.Errorf(`route "other" counted %v requests, want 50`, n)
	}
}
