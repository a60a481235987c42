package proxy

import "github.com/shoal-mesh/shoal/internal/metric"

// Circuit breakers beyond requests in flight (issue 17): the cluster's
// open upstream connections (MaxConnections) and retries in flight
// (MaxRetries, attempt.takeRetrySlot).

// roomForConn reports whether the cluster may open another upstream
// connection under limit. At the limit it closes one idle pooled
// connection of the cluster (to any host) to make room, as a new request
// needs a connection more than an idle one does; without one it refuses.
func (cs *clusterState) roomForConn(limit int) bool {
	if int(cs.conns.Load()) < limit {
		return true
	}
	cs.mu.Lock()
	var victim *upConn
	for _, h := range cs.hosts {
		if victim = h.pool.take(); victim != nil {
			break
		}
	}
	cs.mu.Unlock()
	if victim == nil {
		return false
	}
	victim.close()
	return int(cs.conns.Load()) < limit
}

// take removes and returns the oldest idle connection, nil if none.
func (p *pool) take() *upConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) == 0 {
		return nil
	}
	uc := p.idle[0]
	p.idle = append(p.idle[:0], p.idle[1:]...)
	return uc
}

// opened counts a new upstream connection of h's cluster; upConn.close
// counts it closed.
func (uc *upConn) opened() {
	uc.h.cluster.conns.Add(1)
}

// Circuit-breaker resources, the "resource" label of the breaker metrics.
const (
	resConnections = "connections"
	resPending     = "pending_requests"
	resRequests    = "requests"
	resRetries     = "retries"
	resPerEndpoint = "requests_per_endpoint"
)

// registerBreakerMetrics registers the circuit breakers' limits and use
// per cluster, computed at scrape time from the current table (nothing on
// the request path). Only clusters that have served a request have
// series, as for the other per-cluster metrics.
func (p *Proxy) registerBreakerMetrics(reg metric.Registerer) error {
	if reg == nil {
		return nil
	}
	limits := metric.NewGaugeVecFunc(metric.GaugeOpts{
		Name: "shoal_sidecar_circuit_breaker_limit",
		Help: "Circuit-breaker limits per cluster: resource=connections, pending_requests, requests, retries (in flight) and requests_per_endpoint (in flight on one endpoint).",
	}, []string{"cluster", "resource"}, p.eachBreaker(func(emit func(float64, ...string), name string, cl limitsOf, _ *clusterState, _ []*host) {
		emit(float64(cl.MaxConnections), name, resConnections)
		emit(float64(cl.MaxPendingRequests), name, resPending)
		emit(float64(cl.MaxRequests), name, resRequests)
		emit(float64(cl.MaxRetries), name, resRetries)
		emit(float64(cl.MaxRequestsPerEndpoint), name, resPerEndpoint)
	}))
	use := metric.NewGaugeVecFunc(metric.GaugeOpts{
		Name: "shoal_sidecar_circuit_breaker_in_use",
		Help: "What counts against each circuit-breaker limit now: open upstream connections, requests and retries in flight, and the most requests in flight on one endpoint (the proxy queues no pending requests).",
	}, []string{"cluster", "resource"}, p.eachBreaker(func(emit func(float64, ...string), name string, _ limitsOf, cs *clusterState, hosts []*host) {
		emit(float64(cs.conns.Load()), name, resConnections)
		emit(0, name, resPending)
		emit(float64(cs.inflight.Load()), name, resRequests)
		emit(float64(cs.retrying.Load()), name, resRetries)
		var most int64
		for _, h := range hosts {
			most = max(most, h.load.inProgress.Load())
		}
		emit(float64(most), name, resPerEndpoint)
	}))
	if err := reg.Register(limits); err != nil {
		return err
	}
	return reg.Register(use)
}

// limitsOf is the part of a cluster's configuration the breaker metrics
// read.
type limitsOf struct {
	MaxConnections, MaxPendingRequests, MaxRequests, MaxRetries, MaxRequestsPerEndpoint int
}

// eachBreaker returns a GaugeVecFunc callback calling f for every cluster
// of the current table that has served a request.
func (p *Proxy) eachBreaker(f func(emit func(float64, ...string), name string, cl limitsOf, cs *clusterState, hosts []*host)) func(func(float64, ...string)) {
	return func(emit func(float64, ...string)) {
		b := p.bound.Load()
		if b == nil {
			return
		}
		for i, cl := range b.table.Clusters {
			cs := b.clusters[i]
			if cs.codes.byCode.Load() == nil {
				continue // no traffic yet: no series
			}
			f(emit, cl.Name, limitsOf{cl.MaxConnections, cl.MaxPendingRequests, cl.MaxRequests, cl.MaxRetries, cl.MaxRequestsPerEndpoint}, cs, b.hosts[i])
		}
	}
}
