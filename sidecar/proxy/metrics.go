package proxy

import (
	"strconv"
	"sync/atomic"

	"github.com/shoal-mesh/shoal/internal/metric"
)

// metrics holds the proxy's collectors. Per-request paths use handles
// resolved ahead of time (per cluster, per endpoint, per status code), so
// counting a request is a few atomic adds with no label lookups.
type metrics struct {
	requests  *metric.CounterVec   // cluster, code
	latency   *metric.HistogramVec // cluster
	upstream  *metric.CounterVec   // cluster, endpoint
	ejections *metric.CounterVec   // cluster
	stalls    *metric.CounterVec   // cluster
	hedges    *metric.CounterVec   // cluster
	rejected  *metric.CounterVec   // code: requests refused before routing
	timeouts  *metric.CounterVec   // kind: connections closed by a timeout
	// handshakes counts mTLS handshakes by direction (inbound, upstream)
	// and result (ok, error).
	handshakes *metric.CounterVec
	// writeTimeouts and tcpIdleTimeouts are timeouts' two children.
	writeTimeouts, tcpIdleTimeouts *metric.Counter
	acceptErrors                   *metric.Counter // failed Accepts, retried
	// edges are the golden metrics per edge (edges.go).
	edges *edgeMetrics
}

// latencyBuckets are the request latency histograms' buckets, seconds.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics(reg metric.Registerer, service string) (*metrics, error) {
	m := &metrics{
		requests: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_sidecar_requests_total", Help: "Requests by cluster and response status code.",
		}, []string{"cluster", "code"}),
		latency: metric.NewHistogramVec(metric.HistogramOpts{
			Name: "shoal_sidecar_request_duration_seconds", Help: "Request latency through the proxy until the response is complete.",
			Buckets: latencyBuckets,
		}, []string{"cluster"}),
		upstream: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_sidecar_upstream_requests_total", Help: "Upstream attempts per endpoint, retries included.",
		}, []string{"cluster", "endpoint"}),
		ejections: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_sidecar_outlier_ejections_total", Help: "Endpoints ejected by outlier detection.",
		}, []string{"cluster"}),
		stalls: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_sidecar_endpoint_stalls_total",
			Help: "Endpoints marked stalled: requests in flight and none answered for the stall threshold (a blocked event loop).",
		}, []string{"cluster"}),
		hedges: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_sidecar_hedged_requests_total",
			Help: "Requests sent to another endpoint while waiting on one that stopped answering (least_loaded; GETs and other idempotent requests).",
		}, []string{"cluster"}),
		rejected: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_sidecar_rejected_requests_total", Help: "Malformed or over-limit requests refused before routing.",
		}, []string{"code"}),
		timeouts: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_sidecar_connection_timeouts_total",
			Help: "Client connections closed by a timeout: kind=write when no byte could be written to the client (it stopped reading) for the write timeout, kind=tcp_idle when a proxied TCP connection moved no byte either way for the idle timeout.",
		}, []string{"kind"}),
		handshakes: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_sidecar_tls_handshakes_total",
			Help: "mTLS handshakes by direction (inbound: a caller at --listen; upstream: this proxy to an mTLS endpoint) and result (ok, error).",
		}, []string{"direction", "result"}),
		acceptErrors: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_sidecar_accept_errors_total",
			Help: "Failed accepts on the proxy's listeners (out of file descriptors, aborted connections), retried with a backoff.",
		}),
	}
	m.edges = newEdgeMetrics(service)
	m.writeTimeouts = m.timeouts.WithLabelValues("write")
	m.tcpIdleTimeouts = m.timeouts.WithLabelValues("tcp_idle")
	if reg == nil {
		return m, nil
	}
	for _, c := range []metric.Collector{m.requests, m.latency, m.upstream, m.ejections, m.stalls, m.hedges, m.rejected, m.timeouts, m.acceptErrors, m.handshakes, m.edges.requests, m.edges.latency} {
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
	vec    *metric.CounterVec
	labels []string                                        // the label values before the code
	byCode atomic.Pointer[[500]atomic.Pointer[counterRef]] // codes 100-599
}

type counterRef struct{ c *metric.Counter }

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
		lvs := append(append(make([]string, 0, len(cc.labels)+1), cc.labels...), strconv.Itoa(code))
		ref = &counterRef{cc.vec.WithLabelValues(lvs...)}
		t[code-100].Store(ref)
	}
	ref.c.Inc()
}

// lazyCounter resolves one child of a CounterVec on first use. Safe for
// concurrent use.
type lazyCounter struct {
	ref atomic.Pointer[counterRef]
}

func (lc *lazyCounter) inc(vec *metric.CounterVec, labels ...string) {
	ref := lc.ref.Load()
	if ref == nil {
		lc.ref.CompareAndSwap(nil, &counterRef{vec.WithLabelValues(labels...)})
		ref = lc.ref.Load()
	}
	ref.c.Inc()
}
