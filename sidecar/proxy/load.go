package proxy

import (
	"sync/atomic"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/lrsclient"
)

// endpointLoad counts one host's upstream requests for load reports (LRS):
// cumulative counters, read as deltas by TakeLoad. Safe for concurrent use;
// the request path only adds.
type endpointLoad struct {
	issued, succeeded, failed atomic.Uint64
	inProgress                atomic.Int64
	latencyNanos, latencyN    atomic.Uint64
	// taken* are the values at the previous TakeLoad; only TakeLoad (under
	// Proxy.stateMu) touches them.
	takenIssued, takenSucceeded, takenFailed, takenLatency, takenN uint64
}

// begin counts a request sent to the host.
func (l *endpointLoad) begin() {
	l.issued.Add(1)
	l.inProgress.Add(1)
}

// end counts its completion, failed (a 5xx, a reset, a timeout or a failed
// connection, as Envoy counts LRS errors) or not, after d.
func (l *endpointLoad) end(d time.Duration, failed bool) {
	l.inProgress.Add(-1)
	if failed {
		l.failed.Add(1)
	} else {
		l.succeeded.Add(1)
	}
	l.latencyNanos.Add(uint64(d))
	l.latencyN.Add(1)
}

// failedAttempt reports whether an HTTP/1 attempt's outcome counts as an
// error in load reports.
func failedAttempt(out outcome, code int) bool {
	switch out {
	case relayed, retryStatus:
		return code >= 500
	case clientFailed:
		return false
	}
	return true
}

// TakeLoad returns, per cluster and endpoint that saw requests, what was
// sent since the previous call (and what is in progress now). For the load
// reporting client (sidecar/lrsclient); called from one goroutine.
func (p *Proxy) TakeLoad() []lrsclient.ClusterLoad {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	var out []lrsclient.ClusterLoad
	for name, cs := range p.states {
		var eps []lrsclient.EndpointLoad
		cs.mu.Lock()
		for addr, h := range cs.hosts {
			if e, ok := h.load.take(addr); ok {
				eps = append(eps, e)
			}
		}
		cs.mu.Unlock()
		if len(eps) > 0 && name != "" {
			out = append(out, lrsclient.ClusterLoad{Cluster: name, Endpoints: eps})
		}
	}
	return out
}

// take returns the deltas since the previous take; ok is false when the
// host saw nothing and has nothing in progress.
func (l *endpointLoad) take(addr string) (lrsclient.EndpointLoad, bool) {
	issued, ok, failed := l.issued.Load(), l.succeeded.Load(), l.failed.Load()
	lat, n := l.latencyNanos.Load(), l.latencyN.Load()
	e := lrsclient.EndpointLoad{
		Address: addr,
		Issued:  issued - l.takenIssued, Succeeded: ok - l.takenSucceeded, Failed: failed - l.takenFailed,
		InProgress: uint64(max(0, l.inProgress.Load())),
		LatencySum: time.Duration(lat - l.takenLatency), LatencyCount: n - l.takenN,
	}
	l.takenIssued, l.takenSucceeded, l.takenFailed, l.takenLatency, l.takenN = issued, ok, failed, lat, n
	return e, e.Issued+e.Succeeded+e.Failed+e.InProgress > 0
}
