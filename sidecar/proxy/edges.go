package proxy

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/shoal-mesh/shoal/internal/metric"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// Golden metrics per edge (issue 15): every request this proxy sends
// (outbound, per-upstream and gateway listeners; not inbound, whose caller
// counts the same request) is counted in
// shoal_requests_total{source,destination,route,code} and timed in
// shoal_request_duration_seconds{source,destination,route}. source is the
// proxy's own service (Config.Service), destination the service of the
// cluster the request went to (the cluster name up to a strategy suffix
// "/…" or subset "[…]"), route the matched route's name as in /config_dump
// ("<route>/<rule>"). Labels come from the configuration only, never from
// the request, and at most maxEdges (destination, route) pairs get series
// of their own; later ones are counted under route "other".

// maxEdges bounds the (destination, route) pairs with series of their own.
const maxEdges = 1000

// Label values for a request without a route, or without a cluster.
const (
	noRoute    = "-"
	noService  = "-"
	otherRoute = "other"
)

// edgeMetrics holds the per-edge collectors and every edge created so far.
type edgeMetrics struct {
	requests *metric.CounterVec   // source, destination, route, code
	latency  *metric.HistogramVec // source, destination, route
	source   string

	mu    sync.Mutex // guards edges
	edges map[[2]string]*edge
}

func newEdgeMetrics(source string) *edgeMetrics {
	return &edgeMetrics{
		requests: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_requests_total",
			Help: "Requests this proxy sent, per edge: source (this proxy's service), destination service, route (\"<route>/<rule>\"; \"-\": none) and response status code.",
		}, []string{"source", "destination", "route", "code"}),
		latency: metric.NewHistogramVec(metric.HistogramOpts{
			Name:    "shoal_request_duration_seconds",
			Help:    "Latency of the requests this proxy sent, per edge (source, destination, route), until the response is complete.",
			Buckets: latencyBuckets,
		}, []string{"source", "destination", "route"}),
		source: source,
		edges:  make(map[[2]string]*edge),
	}
}

// edge is one (source, destination, route): a counter per status code,
// resolved on first use, and the latency histogram.
type edge struct {
	codes   codeCounters
	latency *metric.Histogram
}

func (e *edge) observe(code int, seconds float64) {
	e.codes.inc(code)
	e.latency.Observe(seconds)
}

// get returns the edge of (destination, route), creating it.
func (em *edgeMetrics) get(destination, route string) *edge {
	em.mu.Lock()
	defer em.mu.Unlock()
	key := [2]string{destination, route}
	if e, ok := em.edges[key]; ok {
		return e
	}
	if len(em.edges) >= maxEdges {
		key[1] = otherRoute
		if e, ok := em.edges[key]; ok {
			return e
		}
	}
	e := &edge{
		codes:   codeCounters{vec: em.requests, labels: []string{em.source, key[0], key[1]}},
		latency: em.latency.WithLabelValues(em.source, key[0], key[1]),
	}
	em.edges[key] = e
	return e
}

// edgeCache is a cluster's edges by route name, read without locking; a
// new route name copies the map.
type edgeCache struct {
	em          *edgeMetrics
	destination string
	mu          sync.Mutex // serializes additions
	byRoute     atomic.Pointer[map[string]*edge]
}

// edge returns the edge of the route named route ("" for none).
func (ec *edgeCache) edge(route string) *edge {
	if m := ec.byRoute.Load(); m != nil {
		if e, ok := (*m)[route]; ok {
			return e
		}
	}
	ec.mu.Lock()
	defer ec.mu.Unlock()
	old := ec.byRoute.Load()
	if old != nil {
		if e, ok := (*old)[route]; ok {
			return e
		}
	}
	label := route
	if label == "" {
		label = noRoute
	}
	e := ec.em.get(ec.destination, label)
	m := make(map[string]*edge, 1)
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	m[route] = e
	ec.byRoute.Store(&m)
	return e
}

// countEdge records a request sent through a listener of kind m to cs
// (route rt, nil for none) in its edge's metrics; inbound requests are
// the caller's to count.
func countEdge(m Mode, cs *clusterState, rt *route.Route, code int, seconds float64) {
	if m.Kind == Inbound {
		return
	}
	name := ""
	if rt != nil {
		name = rt.Name
	}
	cs.edges.edge(name).observe(code, seconds)
}

// destinationOf is the service a cluster name stands for: the name up to
// a strategy suffix ("orders/least_request") or a subset ("orders[v=2]");
// "-" for none.
func destinationOf(cluster string) string {
	if i := strings.IndexAny(cluster, "/["); i >= 0 {
		cluster = cluster[:i]
	}
	if cluster == "" {
		return noService
	}
	return cluster
}
