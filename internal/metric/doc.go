// Package metric is a small Prometheus instrumentation library: counters,
// gauges and histograms with fixed buckets, their label vectors, a Registry
// that writes the Prometheus text exposition format 0.0.4, and collectors
// for the Go runtime and the process that keep the metric names of
// prometheus/client_golang (go_goroutines, go_memstats_*,
// process_resident_memory_bytes, process_cpu_seconds_total, ...).
//
// It exists so that the sidecar binary does not link client_golang
// (issue #7: the sidecar's resident memory), and it provides exactly what
// shoal's sidecar, xDS client and gossip use. The control plane keeps
// client_golang and exports a Registry through
// controlplane/internal/promadapter.
//
// All methods are safe for concurrent use. Counting is lock-free: Inc and
// Observe are atomic adds and never allocate. WithLabelValues takes a read
// lock and allocates only the first time a label combination is seen; hot
// paths keep the child it returns.
//
//	reg := metric.NewRegistry()
//	requests := metric.NewCounterVec(metric.CounterOpts{
//		Name: "shoal_sidecar_requests_total", Help: "Requests by cluster and code.",
//	}, []string{"cluster", "code"})
//	reg.MustRegister(requests, metric.NewGoCollector(), metric.NewProcessCollector())
//	ok := requests.WithLabelValues("orders", "200") // keep it
//	ok.Inc()
//	http.Handle("/metrics", reg)
package metric
