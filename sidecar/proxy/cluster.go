package proxy

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-mesh/shoal/internal/metric"
	"github.com/shoal-mesh/shoal/sidecar/proxy/h2"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// clusterState is the proxy's state of one cluster name; it survives table
// swaps so that ejections, pools and counters persist across xDS updates.
type clusterState struct {
	name     string
	m        *metrics
	inflight atomic.Int64 // circuit breaker: requests in flight
	conns    atomic.Int64 // open HTTP/1.1 and TCP upstream connections (MaxConnections)
	retrying atomic.Int64 // requests holding a retry slot (MaxRetries)
	ejected  atomic.Int32 // hosts currently ejected
	stalled  atomic.Int32 // hosts currently marked stalled
	codes    codeCounters
	edges    edgeCache // per route: the golden metrics per edge
	// latency and ejects are resolved on first use: a cluster without
	// traffic creates no series.
	latency lazyObserver
	ejects  lazyCounter
	stalls  lazyCounter
	hedges  lazyCounter

	// bound is set once the cluster was in a binding (p.stateMu): hosts
	// added later warm up (route.SlowStart).
	bound bool

	// mu guards hosts.
	mu    sync.Mutex
	hosts map[string]*host
}

// host is the proxy's state of one endpoint address within a cluster:
// connection pool, outlier detection and metrics. Safe for concurrent use.
type host struct {
	addr    string
	cluster *clusterState
	// serverID is the SPIFFE ID to require when dialing over mTLS ("" for
	// plain), set by bind from the table's endpoint.
	serverID atomic.Pointer[string]
	pool     pool
	h2       atomic.Pointer[h2.Pool] // multiplexed HTTP/2 connections, made on first use
	h2closed atomic.Bool             // closeH2 was called: a pool made later is closed at once
	requests lazyCounter             // upstream_requests_total{cluster, endpoint}
	retired  atomic.Bool             // no longer in the table: its series is deleted
	load     endpointLoad            // for load reports (LRS)

	consec5xx     atomic.Int32
	consecFailure atomic.Int32
	isEjected     atomic.Bool
	ejectedUntil  atomic.Int64 // unix nanoseconds
	timesEjected  atomic.Int32

	// Stall detection (stall.go).
	lastDone  atomic.Int64 // unix nanoseconds of a recent completed response
	peak      atomic.Int64 // recent peak attempt latency, nanoseconds, decaying
	stalled   atomic.Bool
	stalledAt atomic.Int64 // unix nanoseconds: marked, or the last probe
	// joined is when h joined its cluster after the first binding (unix
	// nanoseconds; 0: present from the start, or warmed up).
	joined atomic.Int64
}

// binding attaches a table to the proxy's persistent state: per cluster
// (by Cluster.Index) its state and per endpoint (by Endpoint.Index) its
// host. Immutable once built; swapped atomically with the table.
type binding struct {
	table    *route.Table
	clusters []*clusterState
	hosts    [][]*host
	peers    map[netip.Addr]struct{} // endpoint IPs: mesh peers (Mode.trustsForwarded)
}

// bind builds the binding for t, creating state for new clusters and
// hosts, and retires state for clusters and hosts t no longer has.
func (p *Proxy) bind(t *route.Table) *binding {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	b := &binding{table: t, clusters: make([]*clusterState, len(t.Clusters)), hosts: make([][]*host, len(t.Clusters)),
		peers: make(map[netip.Addr]struct{})}
	keep := make(map[string]map[string]bool, len(t.Clusters))
	tlsAddrs := map[string]string{}
	defer func() { p.tlsAddrs.Store(&tlsAddrs) }()
	for i, c := range t.Clusters {
		cs := p.clusterState(c.Name)
		b.clusters[i] = cs
		b.hosts[i] = make([]*host, len(c.Endpoints))
		addrs := make(map[string]bool, len(c.Endpoints))
		for j, e := range c.Endpoints {
			h, created := cs.host(e.Address, p.metrics)
			if created && cs.bound && c.SlowStart.Window > 0 {
				h.joined.Store(time.Now().UnixNano())
			}
			if old := h.serverID.Load(); old == nil || *old != e.ServerID {
				id := e.ServerID
				h.serverID.Store(&id)
				if old != nil {
					h.pool.closeAll() // connections of the other transport
					if hp := h.h2.Load(); hp != nil {
						hp.Drain()
					}
				}
			}
			b.hosts[i][j] = h
			addrs[e.Address] = true
			if e.ServerID != "" {
				tlsAddrs[e.Address] = e.ServerID
			}
			if ap, err := netip.ParseAddrPort(e.Address); err == nil {
				b.peers[ap.Addr().Unmap()] = struct{}{}
			}
		}
		keep[c.Name] = addrs
		cs.bound = true
	}
	p.retire(keep)
	return b
}

// clusterState returns the state of a cluster name; p.stateMu is held.
func (p *Proxy) clusterState(name string) *clusterState {
	if cs, ok := p.states[name]; ok {
		return cs
	}
	cs := &clusterState{
		name:    name,
		m:       p.metrics,
		codes:   codeCounters{vec: p.metrics.requests, labels: []string{name}},
		edges:   edgeCache{em: p.metrics.edges, destination: destinationOf(name)},
		latency: lazyObserver{vec: p.metrics.latency},
		hosts:   make(map[string]*host),
	}
	p.states[name] = cs
	return cs
}

// host returns the state of addr, created reports a new one.
func (cs *clusterState) host(addr string, m *metrics) (h *host, created bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if h, ok := cs.hosts[addr]; ok {
		return h, false
	}
	h = &host{addr: addr, cluster: cs}
	cs.hosts[addr] = h
	return h, true
}

// retire closes idle connections and forgets the state of clusters and
// hosts that are not in keep. In-flight requests on them finish normally.
func (p *Proxy) retire(keep map[string]map[string]bool) {
	for name, cs := range p.states {
		addrs, ok := keep[name]
		cs.mu.Lock()
		for addr, h := range cs.hosts {
			if ok && addrs[addr] {
				continue
			}
			delete(cs.hosts, addr)
			if h.isEjected.Load() {
				cs.ejected.Add(-1)
			}
			if h.stalled.CompareAndSwap(true, false) {
				cs.stalled.Add(-1)
			}
			h.pool.shutdown() // requests in flight close their connections
			h.closeH2()
			h.retired.Store(true)
			p.metrics.upstream.DeleteLabelValues(name, addr)
		}
		cs.mu.Unlock()
		if !ok && name != "" {
			delete(p.states, name)
		}
	}
}

// available reports whether h may take traffic, lifting an expired
// ejection. It reads the clock only for ejected hosts.
func (h *host) available() bool {
	if !h.isEjected.Load() {
		return true
	}
	if time.Now().UnixNano() < h.ejectedUntil.Load() {
		return false
	}
	if h.isEjected.CompareAndSwap(true, false) {
		h.cluster.ejected.Add(-1)
		h.consec5xx.Store(0)
		h.consecFailure.Store(0)
	}
	return true
}

// onSuccess records a non-5xx response.
func (h *host) onSuccess() {
	if h.consec5xx.Load() != 0 {
		h.consec5xx.Store(0)
	}
	if h.consecFailure.Load() != 0 {
		h.consecFailure.Store(0)
	}
}

// on5xx records a 5xx response and ejects h past the threshold.
func (h *host) on5xx(od *route.OutlierDetection, n int) {
	if int(h.consec5xx.Add(1)) >= od.Consecutive5xx {
		h.eject(od, n)
	}
}

// onFailure records a connect failure, reset or timeout (Envoy's gateway
// failure); these also count as 5xx.
func (h *host) onFailure(od *route.OutlierDetection, n int) {
	h.consec5xx.Add(1)
	if int(h.consecFailure.Add(1)) >= od.ConsecutiveConnectFailures {
		h.eject(od, n)
	}
}

// eject ejects h for BaseEjectionTime × times ejected (capped), unless
// that would exceed MaxEjectionPercent of the n hosts; one host may always
// be ejected.
func (h *host) eject(od *route.OutlierDetection, n int) {
	if od.Disabled || h.isEjected.Load() {
		return
	}
	cs := h.cluster
	limit := max(1, n*od.MaxEjectionPercent/100)
	if int(cs.ejected.Load()) >= limit {
		return
	}
	if !h.isEjected.CompareAndSwap(false, true) {
		return
	}
	if int(cs.ejected.Add(1)) > limit {
		h.isEjected.Store(false)
		cs.ejected.Add(-1)
		return
	}
	times := h.timesEjected.Add(1)
	d := min(od.BaseEjectionTime*time.Duration(times), max(od.MaxEjectionTime, od.BaseEjectionTime))
	h.ejectedUntil.Store(time.Now().Add(d).UnixNano())
	h.consec5xx.Store(0)
	h.consecFailure.Store(0)
	h.pool.closeAll()
	cs.ejects.inc(cs.m.ejections, cs.name)
}

// countRequest counts an upstream attempt on h. The series is created on
// the first attempt, not when the endpoint appears, so that a large mesh
// pays nothing for endpoints this proxy never calls.
func (h *host) countRequest(m *metrics) {
	h.requests.inc(m.upstream, h.cluster.name, h.addr)
	if h.retired.Load() {
		// Retired while in flight: do not bring the deleted series back.
		m.upstream.DeleteLabelValues(h.cluster.name, h.addr)
	}
}

// lazyObserver resolves a HistogramVec child on first use. Safe for
// concurrent use.
type lazyObserver struct {
	vec *metric.HistogramVec
	obs atomic.Pointer[*metric.Histogram]
}

func (lo *lazyObserver) observe(label string, v float64) {
	o := lo.obs.Load()
	if o == nil {
		child := lo.vec.WithLabelValues(label)
		lo.obs.CompareAndSwap(nil, &child)
		o = lo.obs.Load()
	}
	(*o).Observe(v)
}

// h2Pool returns h's pool of HTTP/2 connections, made on first use.
func (h *host) h2Pool(p *Proxy) *h2.Pool {
	if hp := h.h2.Load(); hp != nil {
		return hp
	}
	hp := h2.NewPool(h.addr, h2.PoolConfig{Dial: p.dialH2, IdleTimeout: p.cfg.UpstreamIdleTimeout, Group: &p.h2wg})
	if !h.h2.CompareAndSwap(nil, hp) {
		return h.h2.Load()
	}
	if h.h2closed.Load() {
		hp.Close() // a retired host: its attempts fail over to others
	}
	return hp
}

// closeH2 closes h's HTTP/2 connections; streams on them fail. It does
// not block (SetTable calls it): Proxy.Shutdown waits for p.h2wg.
func (h *host) closeH2() {
	h.h2closed.Store(true)
	if hp := h.h2.Load(); hp != nil {
		hp.Close()
	}
}
