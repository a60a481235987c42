// Package ringhash implements Envoy-compatible ring hash (ketama) load
// balancing with xxHash64, weights, min/max ring size, and the optional
// bounded-load variant of Mirrokni, Thorup and Zadimoghaddam, "Consistent
// Hashing with Bounded Loads" (SODA 2018).
//
// The ring for a given endpoint set, weights and ring sizes is identical to
// Envoy's, so a request key routes to the same address through Envoy, a
// proxyless client and a shoal sidecar.
package ringhash

import (
	"math"
	"math/rand/v2"

	"github.com/shoal-mesh/shoal/sidecar/lb"
)

// Name is the registered strategy name.
const Name = lb.RingHash

// randUint64 replaces the hash of requests without a hash key. Replaced in
// tests.
var randUint64 = rand.Uint64

// Builder builds ring hash pickers. The zero value is ready to use.
type Builder struct{}

var _ lb.Builder = Builder{}

// Name implements lb.Builder.
func (Builder) Name() string { return Name }

// Build implements lb.Builder.
func (Builder) Build(eps []*lb.Endpoint, cfg lb.Config) lb.Picker { return New(eps, cfg) }

// Picker is an immutable ring hash picker. Pick is safe for concurrent use,
// lock-free and does not allocate.
type Picker struct {
	eps  []*lb.Endpoint
	ring ring
	// factor is the bounded load factor c; 0 disables bounded loads.
	factor float64
	// totalWeight is the sum of effective weights, for weighted capacity.
	totalWeight float64
}

// New returns a picker over the eligible endpoints of eps.
func New(eps []*lb.Endpoint, cfg lb.Config) *Picker {
	elig, _ := lb.Eligible(eps, cfg.PanicThreshold)
	p := &Picker{
		eps:    elig,
		ring:   newRing(elig, cfg.RingHash.WithDefaults()),
		factor: cfg.RingHash.BoundedLoadFactor,
	}
	for _, e := range elig {
		p.totalWeight += float64(e.EffectiveWeight())
	}
	return p
}

// RingSize returns the number of ring entries, for stats.
func (p *Picker) RingSize() int { return len(p.ring.hashes) }

// Pick returns the owner of the first ring entry at or after info.Hash
// (a random point without a hash key). Walking clockwise from there, it
// skips excluded endpoints and, with bounded loads, endpoints at capacity;
// if the whole ring is skipped it returns the first owner.
func (p *Picker) Pick(info *lb.PickInfo) (*lb.Endpoint, error) {
	n := len(p.ring.hashes)
	if n == 0 {
		return nil, lb.ErrNoEndpoint
	}
	var h uint64
	if info != nil && info.HasHash {
		h = info.Hash
	} else {
		h = randUint64()
	}
	start := p.ring.search(h)
	first := p.eps[p.ring.owners[start]]
	if p.factor == 0 && !info.HasExclusions() {
		return first, nil
	}
	return p.walk(start, info, first), nil
}

// walk is the slow path: exclusions or bounded loads.
func (p *Picker) walk(start int, info *lb.PickInfo, first *lb.Endpoint) *lb.Endpoint {
	var total float64
	if p.factor != 0 {
		total = float64(p.inFlight())
	}
	n := len(p.ring.hashes)
	for i := range n {
		e := p.eps[p.ring.owners[(start+i)%n]]
		if info.IsExcluded(e.Address) {
			continue
		}
		if p.factor == 0 || p.underCapacity(e, total) {
			return e
		}
	}
	return first
}

// underCapacity reports whether one more request keeps e within c times its
// weighted share of the (total+1) in-flight requests: the Mirrokni bound
// ceil(c·(m+1)/n), weighted.
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
