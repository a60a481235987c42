package maglev

import (
	"math"
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/internal/lbtest"
)

func boundedConfig(c float64) lb.Config {
	cfg := lb.DefaultConfig()
	cfg.Maglev.BoundedLoadFactor = c
	return cfg
}

// Under the bound a key stays where plain Maglev puts it.
func TestBoundedLoadKeepsKeysUnderTheBound(t *testing.T) {
	eps := lbtest.Equal(4)
	plain := New(lbtest.Equal(4), lb.DefaultConfig())
	bounded := New(eps, boundedConfig(1.25))
	// A steady, even load: 10 requests in flight on every endpoint.
	for _, e := range eps {
		for range 10 {
			e.Begin()
		}
	}
	for i := range 2000 {
		want, _ := plain.Pick(lbtest.KeyInfo(i))
		got, _ := bounded.Pick(lbtest.KeyInfo(i))
		if got.Address != want.Address {
			t.Fatalf("key %d: %s, want its own endpoint %s (every endpoint is under the bound)", i, got.Address, want.Address)
		}
	}
}

// A hot key fills its endpoint up to the bound, then spills over, so no
// endpoint holds more than c times the average.
func TestBoundedLoadCapsHotKey(t *testing.T) {
	const held = 300
	eps := lbtest.Equal(3)
	p := New(eps, boundedConfig(1.25))
	hot := lbtest.KeyInfo(42)
	for range held {
		e, err := p.Pick(hot)
		if err != nil {
			t.Fatal(err)
		}
		e.Begin()
	}
	limit := int64(math.Ceil(1.25 * held / 3))
	for _, e := range eps {
		if got := e.InFlight(); got > limit {
			t.Errorf("%s holds %d requests, want <= %d (c=1.25 x average)", e.Address, got, limit)
		}
	}
	own, _ := New(eps, lb.DefaultConfig()).Pick(hot)
	if own.InFlight() < held/3 {
		t.Errorf("the key's own endpoint %s holds %d, want it filled first", own.Address, own.InFlight())
	}
}

// An excluded endpoint (a retry) is passed over with bounded loads too.
func TestBoundedLoadHonoursExclusions(t *testing.T) {
	eps := lbtest.Equal(3)
	p := New(eps, boundedConfig(1.5))
	own, _ := p.Pick(lbtest.KeyInfo(7))
	info := lbtest.KeyInfo(7)
	info.Exclude(own.Address)
	if got, _ := p.Pick(info); got == own {
		t.Errorf("picked the excluded %s", own.Address)
	}
}

func TestValidateRejectsASmallMaglevFactor(t *testing.T) {
	if err := boundedConfig(0.9).Validate(); err == nil {
		t.Error("Validate() = nil for a maglev bounded load factor of 0.9, want an error")
	}
}
