// Package metric is a small Prometheus instrumentation library: counters,
// gauges and histograms with fixed buckets, their label vectors, a Registry
// that writes the Prometheus text exposition format 0.0.4, and collectors
// for the Go runtime and the process that keep the metric names of
// prometheus/client_golang (go_goroutines, go_memstats_*,
// process_resident_memory_bytes, process_cpu_seconds_total, ...).
//
// It is shoal's one instrumentation layer (issue 12), in the sidecar and
// the control plane alike: linking client_golang into the slim sidecar
// would cost it +0.55 MB of text and resident memory it does not have
// (issue #7), and a counter here is an atomic add (15.5 ns per proxied
// request's metrics against 26 ns). A component's own Registry can be
// registered on another (the control plane does so with gossip's).
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
