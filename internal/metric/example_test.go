package metric_test

import (
	"os"

	"github.com/shoal-mesh/shoal/internal/metric"
)

func Example() {
	reg := metric.NewRegistry()
	requests := metric.NewCounterVec(metric.CounterOpts{
		Name: "shoal_sidecar_requests_total", Help: "Requests by cluster and response status code.",
	}, []string{"cluster", "code"})
	latency := metric.NewHistogram(metric.HistogramOpts{
		Name: "request_duration_seconds", Help: "Request latency.", Buckets: []float64{.01, .1, 1},
	})
	reg.MustRegister(requests, latency)

	ok := requests.WithLabelValues("orders", "200") // resolve once, count many times
	ok.Inc()
	ok.Inc()
	requests.WithLabelValues("orders", "503").Inc()
	latency.Observe(0.042)

	os.Stdout.Write(metric.AppendText(nil, reg.Gather()))
	// Output:
	// # HELP request_duration_seconds Request latency.
	// # TYPE request_duration_seconds histogram
	// request_duration_seconds_bucket{le="0.01"} 0
	// request_duration_seconds_bucket{le="0.1"} 1
	// request_duration_seconds_bucket{le="1"} 1
	// request_duration_seconds_bucket{le="+Inf"} 1
	// request_duration_seconds_sum 0.042
	// request_duration_seconds_count 1
	// # HELP shoal_sidecar_requests_total Requests by cluster and response status code.
	// # TYPE shoal_sidecar_requests_total counter
	// shoal_sidecar_requests_total{cluster="orders",code="200"} 2
	// shoal_sidecar_requests_total{cluster="orders",code="503"} 1
}
