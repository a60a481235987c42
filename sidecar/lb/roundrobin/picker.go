// Package roundrobin implements smooth weighted round robin (nginx's
// algorithm) as an immutable, lock-free picker.
//
// Build precomputes one period of the nginx sequence; Pick is one atomic
// increment and two loads, so goroutines share a single rotation and spread
// evenly no matter how picks interleave.
package roundrobin

import (
	"math/rand/v2"
	"sync/atomic"

	"github.com/shoal-mesh/shoal/sidecar/lb"
)

// Name is the registered strategy name.
const Name = lb.RoundRobin

// randUint64 picks the starting point of each new picker, so that frequent
// rebuilds do not favour the first endpoints. Replaced in tests.
var randUint64 = rand.Uint64

// Builder builds round robin pickers. The zero value is ready to use.
type Builder struct{}

var _ lb.Builder = Builder{}

// Name implements lb.Builder.
func (Builder) Name() string { return Name }

// Build implements lb.Builder.
func (Builder) Build(eps []*lb.Endpoint, cfg lb.Config) lb.Picker { return New(eps, cfg) }

// Picker is a smooth weighted round robin picker. Pick is safe for
// concurrent use and does not allocate. A Picker must not be copied.
type Picker struct {
	eps   []*lb.Endpoint
	sched []uint32 // indices into eps: one period of the nginx sequence
	next  atomic.Uint64
}

// New returns a picker over the eligible endpoints of eps (healthy, or all
// in panic mode). It keeps the *Endpoint values, not the slice.
func New(eps []*lb.Endpoint, cfg lb.Config) *Picker {
	elig, _ := lb.Eligible(eps, cfg.PanicThreshold)
	p := &Picker{eps: elig}
	if len(elig) == 0 {
		return p
	}
	ws := make([]uint32, len(elig))
	for i, e := range elig {
		ws[i] = e.EffectiveWeight()
	}
	p.sched = schedule(ws)
	p.next.Store(randUint64() % uint64(len(p.sched)))
	return p
}

// Pick returns the next endpoint in the rotation, skipping excluded ones
// while a non-excluded endpoint exists.
func (p *Picker) Pick(info *lb.PickInfo) (*lb.Endpoint, error) {
	n := uint64(len(p.sched))
	if n == 0 {
		return nil, lb.ErrNoEndpoint
	}
	i := p.next.Add(1) % n
	e := p.eps[p.sched[i]]
	if info.HasExclusions() && info.IsExcluded(e.Address) {
		return p.skipExcluded(i, info, e), nil
	}
	return e, nil
}

// skipExcluded walks the schedule from i to the next non-excluded endpoint,
// or returns fallback when every eligible endpoint is excluded.
func (p *Picker) skipExcluded(i uint64, info *lb.PickInfo, fallback *lb.Endpoint) *lb.Endpoint {
	if !anyAllowed(p.eps, info) {
		return fallback
	}
	n := uint64(len(p.sched))
	for j := uint64(1); ; j++ {
		if e := p.eps[p.sched[(i+j)%n]]; !info.IsExcluded(e.Address) {
			return e
		}
	}
}

func anyAllowed(eps []*lb.Endpoint, info *lb.PickInfo) bool {
	for _, e := range eps {
		if !info.IsExcluded(e.Address) {
			return true
		}
	}
	return false
}
