package xdsserver

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/shoal-mesh/shoal/internal/metric"
)

// The drain gate (issue 18): WaitRemoved answers once no xDS client holds
// an endpoint any more. The tracker keeps, per stream, the load assignment
// (the shared, marshaled Any) each client last ACKed per service, and, for
// a while after a stream closed, what that node held: a disconnected proxy
// keeps routing on its last config (static stability), so it stays pending
// until it reconnects and ACKs, or until the caller's bound.

// goneRetention is how long the ACKed assignments of a closed stream are
// kept (it bounds memory; WaitRemoved's bound is at most a minute).
const goneRetention = 2 * time.Minute

// maxWaitRemoved caps a WaitRemoved bound.
const maxWaitRemoved = time.Minute

// goneNode is what a node's closed stream had ACKed.
type goneNode struct {
	eds map[string]*anypb.Any
	at  time.Time
}

// broadcast wakes every waiter when closed; replaced on each change.
type broadcast struct {
	mu sync.Mutex // guards ch
	ch chan struct{}
}

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}

// edsSent records the load assignments an EDS push carried (nil for a
// removed one), to become what the client holds when it ACKs the push.
func (t *tracker) edsSent(key streamKey, nonce string, sent map[string]*anypb.Any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.streams[key]
	if st == nil {
		return
	}
	ts := st.typeState(resource.EndpointType)
	if p, ok := ts.pushes[nonce]; ok {
		p.eds = sent
		ts.pushes[nonce] = p
	}
}

// edsAcked makes what push p carried what the stream holds, and forgets
// what the node's earlier streams held for those names. Called with t.mu
// held.
func (t *tracker) edsAcked(st *streamState, p push) {
	if p.eds == nil {
		return
	}
	if st.eds == nil {
		st.eds = make(map[string]*anypb.Any, len(p.eds))
	}
	for name, a := range p.eds {
		st.eds[name] = a
	}
	if g, ok := t.gone[st.node.GetId()]; ok {
		for name := range p.eds {
			delete(g.eds, name)
		}
		if len(g.eds) == 0 {
			delete(t.gone, st.node.GetId())
		}
	}
	t.changed.notify()
}

// edsUnsubscribed forgets the assignments a delta client unsubscribed
// from: it no longer routes to them.
func (t *tracker) edsUnsubscribed(key streamKey, names []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.streams[key]; st != nil {
		for _, n := range names {
			delete(st.eds, n)
		}
		t.changed.notify()
	}
}

// edsResubscribed keeps, for a SotW client that names the assignments it
// wants, only those: SotW EDS never says "removed", the client drops an
// assignment by no longer asking for it (Envoy does when the cluster goes).
func (t *tracker) edsResubscribed(key streamKey, names []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.streams[key]
	if st == nil || len(st.eds) == 0 {
		return
	}
	for n := range st.eds {
		if !slices.Contains(names, n) {
			delete(st.eds, n)
		}
	}
	t.changed.notify()
}

// edsClosed keeps what a closing stream held, by node id. Called with t.mu
// held.
func (t *tracker) edsClosed(st *streamState) {
	if len(st.eds) > 0 && st.node.GetId() != "" {
		t.gone[st.node.GetId()] = goneNode{eds: st.eds, at: t.now()}
	}
	now := t.now()
	for id, g := range t.gone {
		if now.Sub(g.at) > goneRetention {
			delete(t.gone, id)
		}
	}
	t.changed.notify()
}

// sotwAssignments names the load assignments of a SotW EDS response (SotW
// resources carry no names: the generated decoder reads cluster_name).
func sotwAssignments(resp *discoveryv3.DiscoveryResponse) map[string]*anypb.Any {
	out := make(map[string]*anypb.Any, len(resp.GetResources()))
	for _, a := range resp.GetResources() {
		var cla endpointv3.ClusterLoadAssignment
		if err := a.UnmarshalTo(&cla); err != nil {
			continue
		}
		out[cla.GetClusterName()] = a
	}
	return out
}

// deltaAssignments are the load assignments a delta EDS response carried,
// and nil for the ones it removed.
func deltaAssignments(resp *discoveryv3.DeltaDiscoveryResponse) map[string]*anypb.Any {
	out := make(map[string]*anypb.Any, len(resp.GetResources())+len(resp.GetRemovedResources()))
	for _, r := range resp.GetResources() {
		out[r.GetName()] = r.GetResource()
	}
	for _, name := range resp.GetRemovedResources() {
		out[name] = nil
	}
	return out
}

// holders returns the node ids (peer addresses when a node has none) whose
// ACKed assignment of service has endpoint, and how many clients had been
// sent one. has memoizes the check per shared Any.
func (t *tracker) holders(service, endpoint string) (pending []string, clients int) {
	memo := map[*anypb.Any]bool{}
	has := func(a *anypb.Any) bool {
		if a == nil {
			return false
		}
		if v, ok := memo[a]; ok {
			return v
		}
		v := assignmentHas(a, endpoint)
		memo[a] = v
		return v
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, st := range t.streams {
		a, ok := st.eds[service]
		if !ok {
			continue
		}
		clients++
		if has(a) {
			pending = append(pending, nodeName(st))
		}
	}
	now := t.now()
	for id, g := range t.gone {
		a, ok := g.eds[service]
		if !ok || now.Sub(g.at) > goneRetention {
			continue
		}
		clients++
		if has(a) {
			pending = append(pending, id+" (disconnected)")
		}
	}
	sort.Strings(pending)
	return pending, clients
}

func nodeName(st *streamState) string {
	if id := st.node.GetId(); id != "" {
		return id
	}
	return st.peer
}

// assignmentHas reports whether the marshaled assignment a lists endpoint
// (host:port).
func assignmentHas(a *anypb.Any, endpoint string) bool {
	var cla endpointv3.ClusterLoadAssignment
	if err := a.UnmarshalTo(&cla); err != nil {
		return true // unreadable: assume the worst, the bound ends the wait
	}
	for _, l := range cla.GetEndpoints() {
		for _, e := range l.GetLbEndpoints() {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			if net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10)) == endpoint {
				return true
			}
		}
	}
	return false
}

// RemovedResult is WaitRemoved's answer.
type RemovedResult struct {
	// Converged is true when no xDS client holds the endpoint.
	Converged bool
	// Waited is how long the call waited.
	Waited time.Duration
	// Pending are the clients (node ids) still holding it.
	Pending []string
	// Clients counts the clients that had been sent the service.
	Clients int
}

// WaitRemoved waits until no xDS client (connected, or disconnected and
// not yet back) holds address:port in what it ACKed for service, or until
// timeout (capped at a minute) or ctx ends. It is safe for concurrent use;
// it blocks.
func (s *Server) WaitRemoved(ctx context.Context, service, address string, port uint32, timeout time.Duration) RemovedResult {
	start := time.Now()
	endpoint := net.JoinHostPort(address, strconv.FormatUint(uint64(port), 10))
	deadline := time.NewTimer(min(max(timeout, 0), maxWaitRemoved))
	defer deadline.Stop()
	var r RemovedResult
	for {
		changed := s.track.changed.wait() // before the check, so no ACK is missed
		r.Pending, r.Clients = s.track.holders(service, endpoint)
		if len(r.Pending) == 0 {
			r.Converged = true
			break
		}
		select {
		case <-changed:
			continue
		case <-deadline.C:
		case <-ctx.Done():
		}
		r.Pending, r.Clients = s.track.holders(service, endpoint)
		r.Converged = len(r.Pending) == 0
		break
	}
	r.Waited = time.Since(start)
	s.dm.wait.Observe(r.Waited.Seconds())
	if !r.Converged {
		s.dm.unacked.Add(uint64(len(r.Pending)))
	}
	return r
}

// drainMetrics are WaitRemoved's metrics.
type drainMetrics struct {
	wait    *metric.Histogram
	unacked *metric.Counter
}

func newDrainMetrics(reg metric.Registerer) (*drainMetrics, error) {
	m := &drainMetrics{
		wait: metric.NewHistogram(metric.HistogramOpts{
			Name:    "shoal_xds_drain_wait_seconds",
			Help:    "How long DrainService.WaitRemoved waited until every xDS client ACKed endpoints without the instance (or the bound).",
			Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}),
		unacked: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_xds_drain_unacked_proxies_total",
			Help: "xDS clients that had not ACKed the removal of an instance when WaitRemoved reached its bound.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []metric.Collector{m.wait, m.unacked} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("xdsserver: drain metrics: %w", err)
		}
	}
	return m, nil
}
