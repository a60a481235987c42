// Package random implements weighted random load balancing: each pick is
// independent, in proportion to endpoint weight.
package random

import (
	"math/rand/v2"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/internal/wrand"
)

// Name is the registered strategy name.
const Name = lb.Random

// randUint64 is the source of picks. Replaced in tests.
var randUint64 = rand.Uint64

// maxRedraws bounds redraws of excluded endpoints before a scan.
const maxRedraws = 8

// Builder builds random pickers. The zero value is ready to use.
type Builder struct{}

var _ lb.Builder = Builder{}

// Name implements lb.Builder.
func (Builder) Name() string { return Name }

// Build implements lb.Builder.
func (Builder) Build(eps []*lb.Endpoint, cfg lb.Config) lb.Picker { return New(eps, cfg) }

// Picker is an immutable weighted random picker. Pick is safe for
// concurrent use, lock-free and does not allocate.
type Picker struct {
	eps     []*lb.Endpoint
	sampler *wrand.Sampler
}

// New returns a picker over the eligible endpoints of eps.
func New(eps []*lb.Endpoint, cfg lb.Config) *Picker {
	elig, _ := lb.Eligible(eps, cfg.PanicThreshold)
	ws := make([]uint32, len(elig))
	for i, e := range elig {
		ws[i] = e.EffectiveWeight()
	}
	return &Picker{eps: elig, sampler: wrand.New(ws)}
}

// Pick returns a weighted random endpoint, redrawing excluded ones.
func (p *Picker) Pick(info *lb.PickInfo) (*lb.Endpoint, error) {
	if len(p.eps) == 0 {
		return nil, lb.ErrNoEndpoint
	}
	e := p.eps[p.sampler.Index(randUint64())]
	if !info.HasExclusions() || !info.IsExcluded(e.Address) {
		return e, nil
	}
	for range maxRedraws {
		if c := p.eps[p.sampler.Index(randUint64())]; !info.IsExcluded(c.Address) {
			return c, nil
		}
	}
	for _, c := range p.eps {
		if !info.IsExcluded(c.Address) {
			return c, nil
		}
	}
	return e, nil
}
