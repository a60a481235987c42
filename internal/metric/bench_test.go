package metric

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The benchmarks compare each operation the sidecar's data path uses with
// client_golang's (sub-benchmarks lib=metric and lib=prometheus). Run them
// and compare with
//
//	go test -run '^$' -bench . -benchmem -count 8 ./internal/metric/ >bench.txt
//	benchstat -col /lib bench.txt

var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// bench runs f serially or, with parallel, on GOMAXPROCS goroutines at
// once (contention on the same series, as concurrent requests have).
func bench(b *testing.B, parallel bool, f func()) {
	b.ReportAllocs()
	if !parallel {
		for b.Loop() {
			f()
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			f()
		}
	})
}

func benchBoth(b *testing.B, ours, theirs func()) {
	for _, mode := range []string{"serial", "parallel"} {
		par := mode == "parallel"
		b.Run("mode="+mode+"/lib=metric", func(b *testing.B) { bench(b, par, ours) })
		b.Run("mode="+mode+"/lib=prometheus", func(b *testing.B) { bench(b, par, theirs) })
	}
}

// BenchmarkCounterInc is a resolved child's Inc (the proxy's per-request
// counters keep their child).
func BenchmarkCounterInc(b *testing.B) {
	c := NewCounterVec(CounterOpts{Name: "x_total"}, []string{"cluster", "code"}).WithLabelValues("orders", "200")
	pc := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total"}, []string{"cluster", "code"}).WithLabelValues("orders", "200")
	benchBoth(b, c.Inc, pc.Inc)
}

// BenchmarkCounterWithLabelValuesInc looks the child up on every call
// (conn.go's rejected-requests counter, gossip, the xDS client).
func BenchmarkCounterWithLabelValuesInc(b *testing.B) {
	cv := NewCounterVec(CounterOpts{Name: "x_total"}, []string{"cluster", "code"})
	pcv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total"}, []string{"cluster", "code"})
	for _, c := range []string{"200", "404", "503"} {
		cv.WithLabelValues("orders", c)
		pcv.WithLabelValues("orders", c)
	}
	benchBoth(b,
		func() { cv.WithLabelValues("orders", "503").Inc() },
		func() { pcv.WithLabelValues("orders", "503").Inc() })
}

// BenchmarkHistogramObserve is a resolved child's Observe with the
// proxy's latency buckets.
func BenchmarkHistogramObserve(b *testing.B) {
	h := NewHistogramVec(HistogramOpts{Name: "x_seconds", Buckets: latencyBuckets}, []string{"cluster"}).WithLabelValues("orders")
	ph := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "x_seconds", Buckets: latencyBuckets}, []string{"cluster"}).WithLabelValues("orders")
	benchBoth(b, func() { h.Observe(0.0042) }, func() { ph.Observe(0.0042) })
}

// BenchmarkScrape writes a sidecar-sized registry (100 endpoints' counters,
// 10 clusters' codes and latency) in the text format.
func BenchmarkScrape(b *testing.B) {
	reg := NewRegistry()
	cv := NewCounterVec(CounterOpts{Name: "x_requests_total", Help: "R."}, []string{"cluster", "code"})
	up := NewCounterVec(CounterOpts{Name: "x_upstream_total", Help: "U."}, []string{"cluster", "endpoint"})
	hv := NewHistogramVec(HistogramOpts{Name: "x_seconds", Help: "L.", Buckets: latencyBuckets}, []string{"cluster"})
	reg.MustRegister(cv, up, hv)
	for i := range 100 {
		cl := string(rune('a' + i%10))
		cv.WithLabelValues(cl, "200").Inc()
		up.WithLabelValues(cl, "10.0.0."+string(rune('0'+i%10))+string(rune('0'+i/10))).Inc()
		hv.WithLabelValues(cl).Observe(0.001)
	}
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = AppendText(buf[:0], reg.Gather())
	}
}
