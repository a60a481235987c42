// Package leastrequest implements Envoy-style least request load balancing
// over the in-flight counters of lb.Load (requests plus pending connects).
//
// Small eligible sets (up to LeastRequestConfig.ExactMaxEndpoints) are
// scanned in full for the endpoint with the least load per unit of weight;
// ties are broken uniformly at random so endpoints of equal load share
// evenly. Larger sets use weighted power of two choices (Mitzenmacher): draw
// ChoiceCount candidates in proportion to weight and take the least loaded
// per unit of weight. Counters live on the endpoints' shared lb.Load, so
// they survive picker rebuilds when endpoints come from one lb.LoadStore.
package leastrequest

import (
	"math/rand/v2"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/internal/wrand"
)

// Name is the registered strategy name.
const Name = lb.LeastRequest

// randUint64 breaks ties and draws candidates. Replaced in tests.
var randUint64 = rand.Uint64

// maxDrawAttempts bounds redraws when candidates are excluded before the
// picker falls back to a full scan.
const maxDrawAttempts = 4

// Builder builds least request pickers. The zero value is ready to use.
type Builder struct{}

var _ lb.Builder = Builder{}

// Name implements lb.Builder.
func (Builder) Name() string { return Name }

// Build implements lb.Builder.
func (Builder) Build(eps []*lb.Endpoint, cfg lb.Config) lb.Picker { return New(eps, cfg) }

// Picker is an immutable least request picker. Pick is safe for concurrent
// use, lock-free and does not allocate. Pick does not change counters: the
// caller calls Begin/End (and BeginConnect/EndConnect) on the result.
type Picker struct {
	eps     []*lb.Endpoint
	weights []int64 // effective weights, parallel to eps
	exact   bool
	choices int
	sampler *wrand.Sampler
}

// New returns a picker over the eligible endpoints of eps.
func New(eps []*lb.Endpoint, cfg lb.Config) *Picker {
	elig, _ := lb.Eligible(eps, cfg.PanicThreshold)
	lc := cfg.LeastRequest.WithDefaults()
	p := &Picker{
		eps:     elig,
		weights: make([]int64, len(elig)),
		exact:   len(elig) <= lc.ExactMaxEndpoints,
		choices: lc.ChoiceCount,
	}
	ws := make([]uint32, len(elig))
	for i, e := range elig {
		ws[i] = e.EffectiveWeight()
		p.weights[i] = int64(ws[i])
	}
	p.sampler = wrand.New(ws)
	return p
}

// Pick returns the least loaded eligible endpoint (exactly on small sets,
// by power of choices on large ones), avoiding excluded addresses while a
// non-excluded endpoint exists.
func (p *Picker) Pick(info *lb.PickInfo) (*lb.Endpoint, error) {
	if len(p.eps) == 0 {
		return nil, lb.ErrNoEndpoint
	}
	if !info.HasExclusions() {
		info = nil // IsExcluded on nil returns at once
	}
	if !p.exact {
		if i := p.draw(info); i >= 0 {
			return p.eps[i], nil
		}
	}
	if i := p.scan(info); i >= 0 {
		return p.eps[i], nil
	}
	return p.eps[p.scan(nil)], nil // everything excluded: ignore exclusions
}

// lighter reports whether endpoint i carries less load per unit of weight
// than endpoint j, given their in-flight counts plus one.
func (p *Picker) lighter(li int64, i int, lj int64, j int) bool {
	return li*p.weights[j] < lj*p.weights[i]
}

// scan returns the index with the least load per weight among non-excluded
// endpoints, ties broken uniformly (reservoir sampling), or -1 if all are
// excluded.
func (p *Picker) scan(info *lb.PickInfo) int {
	best, ties := -1, 0
	var bestLoad int64
	for i, e := range p.eps {
		if info.IsExcluded(e.Address) {
			continue
		}
		l := e.InFlight() + 1
		switch {
		case best < 0 || p.lighter(l, i, bestLoad, best):
			best, bestLoad, ties = i, l, 1
		case !p.lighter(bestLoad, best, l, i): // a tie
			ties++
			if wrand.Intn(randUint64(), ties) == 0 {
				best = i
			}
		}
	}
	return best
}

// draw returns the least loaded per weight of p.choices weighted random
// candidates, redrawing excluded ones a few times, or -1.
func (p *Picker) draw(info *lb.PickInfo) int {
	best := -1
	var bestLoad int64
	for c, attempts := 0, 0; c < p.choices && attempts < p.choices+maxDrawAttempts; attempts++ {
		i := p.sampler.Index(randUint64())
		e := p.eps[i]
		if info.IsExcluded(e.Address) {
			continue
		}
		c++
		if l := e.InFlight() + 1; best < 0 || p.lighter(l, i, bestLoad, best) {
			best, bestLoad = i, l
		}
	}
	return best
}
