// Package maglev implements Envoy-compatible, weighted Maglev consistent
// hashing: a fixed-size lookup table (default 65537 slots) gives O(1) picks
// and near-minimal disruption when endpoints come and go.
package maglev

import (
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
}

// New returns a picker over the eligible endpoints of eps. Building a
// table costs O(TableSize) time and 4 bytes per slot.
func New(eps []*lb.Endpoint, cfg lb.Config) *Picker {
	elig, _ := lb.Eligible(eps, cfg.PanicThreshold)
	return &Picker{eps: elig, table: newTable(elig, cfg.Maglev.WithDefaults().TableSize)}
}

// Pick returns the endpoint owning slot info.Hash % TableSize (a random
// slot without a hash key). An excluded endpoint is replaced by rehashing
// as Envoy does for retries (hash ^= ^0 - attempt + 1), then by a scan.
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
