// Package maglev implements Envoy-compatible, weighted Maglev consistent
// hashing: a fixed-size lookup table (default 65537 slots) gives O(1) picks
// and near-minimal disruption when endpoints come and go. With a bounded
// load factor it also caps each endpoint's share of the requests in flight
// (consistent hashing with bounded loads, Mirrokni, Thorup and
// Zadimoghaddam, SODA 2018), as Envoy's hash_balance_factor does.
package maglev

import (
	"math"
	"math/rand/v2"

	"github.com/shoal-mesh/shoal/sidecar/lb"
)

// Name is the registered strategy name.
const Name = lb.Maglev

// randUint64 replaces the hash of requests without a hash key. Replaced in
// tests.
var randUint64 = rand.Uint64

// maxRehash bounds how often an excluded pick is rehashed before the picker
// falls back to scanning the endpoints.
const maxRehash = 8

// Builder builds Maglev pickers. The zero value is ready to use.
type Builder struct{}

var _ lb.Builder = Builder{}

// Name implements lb.Builder.
func (Builder) Name() string { return Name }

// Build implements lb.Builder.
func (Builder) Build(eps []*lb.Endpoint, cfg lb.Config) lb.Picker { return New(eps, cfg) }

// Picker is an immutable Maglev picker. Pick is safe for concurrent use,
// lock-free and does not allocate.
type Picker struct {
	eps   []*lb.Endpoint
	table []uint32 // slot -> index into eps
	// factor is the bounded load factor c; 0 disables bounded loads.
	factor float64
	// totalWeight is the sum of effective weights, for weighted capacity.
	totalWeight float64
}

// New returns a picker over the eligible endpoints of eps. Building a
// table costs O(TableSize) time and 4 bytes per slot.
func New(eps []*lb.Endpoint, cfg lb.Config) *Picker {
	elig, _ := lb.Eligible(eps, cfg.PanicThreshold)
	p := &Picker{eps: elig, table: newTable(elig, cfg.Maglev.WithDefaults().TableSize), factor: cfg.Maglev.BoundedLoadFactor}
	for _, e := range elig {
		p.totalWeight += float64(e.EffectiveWeight())
	}
	return p
}

// Pick returns the endpoint owning slot info.Hash % TableSize (a random
// slot without a hash key). An excluded endpoint is replaced by rehashing
// as Envoy does for retries (hash ^= ^0 - attempt + 1), then by a scan.
// With bounded loads, an endpoint at capacity is passed over for the
// owners of the following slots.
func (p *Picker) Pick(info *lb.PickInfo) (*lb.Endpoint, error) {
	n := uint64(len(p.table))
	if n == 0 {
		return nil, lb.ErrNoEndpoint
	}
	var h uint64
	if info != nil && info.HasHash {
		h = info.Hash
	} else {
		h = randUint64()
	}
	e := p.eps[p.table[h%n]]
	if p.factor != 0 {
		return p.bounded(h%n, info, e), nil
	}
	if !info.HasExclusions() || !info.IsExcluded(e.Address) {
		return e, nil
	}
	return p.rehash(h, info, e), nil
}

func (p *Picker) rehash(h uint64, info *lb.PickInfo, first *lb.Endpoint) *lb.Endpoint {
	n := uint64(len(p.table))
	for attempt := uint64(1); attempt <= maxRehash; attempt++ {
		if e := p.eps[p.table[(h^(^uint64(0)-attempt+1))%n]]; !info.IsExcluded(e.Address) {
			return e
		}
	}
	for _, e := range p.eps {
		if !info.IsExcluded(e.Address) {
			return e
		}
	}
	return first
}

// bounded walks the table from slot: the first owner that is not excluded
// and under capacity takes the request. The slots that follow a key's slot
// are a fixed, key-specific order of the endpoints (each endpoint's slots
// are spread over the table by its own permutation), so an overloaded key
// spills the same way every time and spreads over all endpoints. If no
// endpoint qualifies within one pass, the least loaded one that is not
// excluded wins.
func (p *Picker) bounded(slot uint64, info *lb.PickInfo, first *lb.Endpoint) *lb.Endpoint {
	total := float64(p.inFlight())
	n := uint64(len(p.table))
	for i := range n {
		e := p.eps[p.table[(slot+i)%n]]
		if !info.IsExcluded(e.Address) && p.underCapacity(e, total) {
			return e
		}
	}
	var best *lb.Endpoint
	for _, e := range p.eps {
		if !info.IsExcluded(e.Address) && (best == nil || e.InFlight() < best.InFlight()) {
			best = e
		}
	}
	if best == nil {
		return first
	}
	return best
}

// underCapacity reports whether one more request keeps e within c times its
// weighted share of the (total+1) in-flight requests: the Mirrokni bound
// ceil(c·(m+1)/n), weighted (as ringhash).
func (p *Picker) underCapacity(e *lb.Endpoint, total float64) bool {
	capacity := p.factor * (total + 1) * float64(e.EffectiveWeight()) / p.totalWeight
	return float64(e.InFlight()+1) <= math.Ceil(capacity)
}

// inFlight sums the load over the eligible endpoints: O(endpoints) per
// pick, paid only with bounded loads.
func (p *Picker) inFlight() int64 {
	var sum int64
	for _, e := range p.eps {
		sum += e.InFlight()
	}
	return sum
}
