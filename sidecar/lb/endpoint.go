package lb

import (
	"sync"
	"sync/atomic"
)

// Weight bounds for Endpoint.Weight, as in Envoy's LbEndpoint.load_balancing_weight.
const (
	MinWeight = 1
	MaxWeight = 10000
)

// Endpoint is one upstream host.
//
// Endpoints are shared by pointer: pickers keep []*Endpoint and Pick returns
// one of them, so picking never copies. An Endpoint must not be modified once
// it has been passed to a Builder; a change of health or weight is a new
// Endpoint and a new picker. Only its Load counters change afterwards, and
// those are atomic.
type Endpoint struct {
	// Address identifies the endpoint ("10.0.0.7:3001"). Ring hash and
	// Maglev hash it, exclusions match it, and LoadStore keys counters by it.
	Address string
	// Weight is the relative share of traffic, MinWeight..MaxWeight.
	// Zero is treated as 1; larger values are clamped to MaxWeight.
	Weight uint32
	// Healthy reports whether the endpoint may be picked outside panic mode.
	Healthy bool
	// Metadata is opaque to the load balancers; the zero value is nil.
	Metadata any
	// Load holds the endpoint's in-flight counters. Endpoints that describe
	// the same address across picker rebuilds must share one Load (see
	// LoadStore.Attach). Nil means "not tracked": Begin/End do nothing and
	// the endpoint always looks idle.
	Load *Load
}

// EffectiveWeight returns Weight clamped to MinWeight..MaxWeight.
func (e *Endpoint) EffectiveWeight() uint32 {
	return min(max(e.Weight, MinWeight), MaxWeight)
}

// Begin records the start of a request to e. Every Begin must be paired with
// exactly one End. Safe for concurrent use; never blocks.
func (e *Endpoint) Begin() { e.Load.add(false, 1) }

// End records the end of a request started with Begin.
func (e *Endpoint) End() { e.Load.add(false, -1) }

// BeginConnect records a connection attempt to e that has not completed.
// Pending connects count as load for least request and bounded load, so a
// host that accepts connections slowly is not flooded.
func (e *Endpoint) BeginConnect() { e.Load.add(true, 1) }

// EndConnect records the completion (success or failure) of a connect.
func (e *Endpoint) EndConnect() { e.Load.add(true, -1) }

// InFlight returns the requests plus pending connects currently recorded
// for e. The value is a snapshot and may be stale by the time it is used.
func (e *Endpoint) InFlight() int64 { return e.Load.InFlight() }

// Load is the set of atomic load counters of one address. It is padded to a
// cache line so that counters of different endpoints do not false-share.
// A Load must not be copied.
type Load struct {
	active     atomic.Int64
	connecting atomic.Int64
	orca       orcaState
	answers    answerState
	_          [48]byte // to 128 bytes, two cache lines
}

// add is nil-safe so that untracked endpoints cost one branch.
func (l *Load) add(connect bool, d int64) {
	switch {
	case l == nil:
	case connect:
		l.connecting.Add(d)
	default:
		l.active.Add(d)
	}
}

// InFlight returns active requests plus pending connects; zero for nil.
func (l *Load) InFlight() int64 {
	if l == nil {
		return 0
	}
	return l.active.Load() + l.connecting.Load()
}

// LoadStore keeps one Load per address so that in-flight counts survive
// picker rebuilds: the endpoint set is rebuilt on every EDS or gossip health
// change, while requests started against the old picker finish against the
// new one. Use one LoadStore per cluster. Safe for concurrent use; it is off
// the hot path (only Attach takes its lock).
type LoadStore struct {
	// mu guards loads.
	mu    sync.Mutex
	loads map[string]*Load
}

// NewLoadStore returns an empty store.
func NewLoadStore() *LoadStore {
	return &LoadStore{loads: make(map[string]*Load)}
}

// Attach sets the Load of every endpoint in eps, reusing the counters of
// addresses seen before, and forgets idle counters of addresses that are no
// longer in eps. Counters of departed addresses that still have requests in
// flight are kept until a later Attach finds them idle, so a host that leaves
// and returns quickly keeps its count. Call Attach before eps are passed to a
// Builder; it writes the Load fields.
func (s *LoadStore) Attach(eps []*Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[string]struct{}, len(eps))
	for _, e := range eps {
		l, ok := s.loads[e.Address]
		if !ok {
			l = new(Load)
			s.loads[e.Address] = l
		}
		e.Load = l
		seen[e.Address] = struct{}{}
	}
	for addr, l := range s.loads {
		if _, ok := seen[addr]; !ok && l.InFlight() == 0 {
			delete(s.loads, addr)
		}
	}
}

// Len returns the number of addresses with counters, for tests and metrics.
func (s *LoadStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.loads)
}
