package proxy

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the proxy's collectors. Per-request paths use handles
// resolved ahead of time (per cluster, per endpoint, per status code), so
// counting a request is a few atomic adds with no label lookups.
type metrics struct {
	requests  *prometheus.CounterVec   // cluster, code
	latency   *prometheus.HistogramVec // cluster
	upstream  *prometheus.CounterVec   // cluster, endpoint
	ejections *prometheus.CounterVec   // cluster
	rejected  *prometheus.CounterVec   // code: requests refused before routing
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_sidecar_requests_total", Help: "Requests by cluster and response status code.",
		}, []string{"cluster", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shoal_sidecar_request_duration_seconds", Help: "Request latency through the proxy until the response is complete.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"cluster"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_sidecar_upstream_requests_total", Help: "Upstream attempts per endpoint, retries included.",
		}, []string{"cluster", "endpoint"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_sidecar_outlier_ejections_total", Help: "Endpoints ejected by outlier detection.",
		}, []string{"cluster"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_sidecar_rejected_requests_total", Help: "Malformed or over-limit requests refused before routing.",
		}, []string{"code"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.upstream, m.ejections, m.rejected} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// codeCounters resolves requests_total children lazily, once per code.
// The per-code table itself is allocated on the first request, so that
// clusters that never see traffic (most of them in a large mesh) cost a
// pointer. Safe for concurrent use.
type codeCounters struct {
	vec     *prometheus.CounterVec
	cluster string
	byCode  atomic.Pointer[[500]atomic.Pointer[counterRef]] // codes 100-599
}

type counterRef struct{ c prometheus.Counter }

func (cc *codeCounters) inc(code int) {
	if code < 100 || code > 599 {
		code = 599
	}
	t := cc.byCode.Load()
	if t == nil {
		cc.byCode.CompareAndSwap(nil, new([500]atomic.Pointer[counterRef]))
		t = cc.byCode.Load()
	}
	ref := t[code-100].Load()
	if ref == nil {
		ref = &counterRef{cc.vec.WithLabelValues(cc.cluster, strconv.Itoa(code))}
		t[code-100].Store(ref)
	}
	ref.c.Inc()
}

// lazyCounter resolves one child of a CounterVec on first use. Safe for
// concurrent use.
type lazyCounter struct {
	ref atomic.Pointer[counterRef]
}

func (lc *lazyCounter) inc(vec *prometheus.CounterVec, labels ...string) {
	ref := lc.ref.Load()
	if ref == nil {
		lc.ref.CompareAndSwap(nil, &counterRef{vec.WithLabelValues(labels...)})
		ref = lc.ref.Load()
	}
	ref.c.Inc()
}
