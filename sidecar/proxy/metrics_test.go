package proxy

import (
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// BenchmarkRequestMetrics is what the data path spends on metrics per
// request (handle.go, h2.go): the status-code counter and the latency
// histogram of the request's cluster, plus the upstream attempt counter
// of its endpoint, and the request's edge (edges.go), with the series
// already created.
func BenchmarkRequestMetrics(b *testing.B) {
	p, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	p.stateMu.Lock()
	cs := p.clusterState("bench")
	h, _ := cs.host("127.0.0.1:8080", p.metrics)
	p.stateMu.Unlock()
	rt := &route.Route{Name: "bench/0"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.countRequest(p.metrics)
			cs.codes.inc(200)
			cs.latency.observe(cs.name, 0.0042)
			countEdge(Mode{Kind: Outbound}, cs, rt, 200, 0.0042)
		}
	})
}

// BenchmarkRejectedMetric is a refused request's counter, looked up by
// label value on every call (conn.go reject).
func BenchmarkRejectedMetric(b *testing.B) {
	p, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.metrics.rejected.WithLabelValues("431").Inc()
		}
	})
}
