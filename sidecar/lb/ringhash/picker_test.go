package ringhash

import (
	"fmt"
	"math"
	"testing"

	"go.uber.org/goleak"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/internal/lbtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// envoyHosts are the hosts of Envoy's RingHashLoadBalancerTest.Basic.
func envoyHosts() []*lb.Endpoint {
	var eps []*lb.Endpoint
	for port := 90; port <= 95; port++ {
		eps = append(eps, &lb.Endpoint{Address: fmt.Sprintf("127.0.0.1:%d", port), Weight: 1, Healthy: true})
	}
	return eps
}

// TestRingMatchesEnvoy replays Envoy's RingHashLoadBalancerTest.Basic
// (minimum_ring_size 12, xxHash): same ring, same choices.
func TestRingMatchesEnvoy(t *testing.T) {
	eps := envoyHosts()
	cfg := lb.DefaultConfig()
	cfg.RingHash.MinRingSize = 12
	p := New(eps, cfg)
	if got := p.RingSize(); got != 12 {
		t.Fatalf("ring size = %d, want 12", got)
	}
	tests := []struct {
		name string
		hash uint64
		want int // index into eps
	}{
		{name: "hash 0 goes to the first entry", hash: 0, want: 4},
		{name: "max hash wraps to the first entry", hash: math.MaxUint64, want: 4},
		{name: "hash equal to an entry goes to that entry", hash: 3551244743356806947, want: 5},
		{name: "hash just past an entry goes to the next", hash: 3551244743356806948, want: 3},
		{name: "hash just before the last entry goes to it", hash: 16117243373044804880, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info := &lb.PickInfo{}
			info.SetHash(tc.hash)
			if got, _ := p.Pick(info); got != eps[tc.want] {
				t.Errorf("Pick(%d) = %s, want %s", tc.hash, got.Address, eps[tc.want].Address)
			}
		})
	}
}

func TestRingSize(t *testing.T) {
	tests := []struct {
		name     string
		weights  []uint32
		min, max uint64
		want     int
	}{
		{name: "rounds up so the lightest host has whole entries (Envoy UnevenHosts)", weights: []uint32{1, 1}, min: 3, want: 4},
		{name: "defaults to 1024 entries", weights: []uint32{1, 1, 1, 1}, want: 1024},
		{name: "gives weight 1 of 1:3 a whole share", weights: []uint32{1, 3}, min: 10, want: 12},
		{name: "caps at max ring size", weights: []uint32{1, 10000}, max: 5000, want: 5000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := lb.DefaultConfig()
			cfg.RingHash = lb.RingHashConfig{MinRingSize: tc.min, MaxRingSize: tc.max}
			if got := New(lbtest.Endpoints(tc.weights...), cfg).RingSize(); got != tc.want {
				t.Errorf("ring size = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestPickDistribution(t *testing.T) {
	const keys = 10000
	tests := []struct {
		name    string
		weights []uint32
		info    func(int) *lb.PickInfo
	}{
		{name: "spreads keys over equal endpoints", weights: []uint32{1, 1, 1}, info: lbtest.KeyInfo},
		{name: "spreads keys by weight", weights: []uint32{1, 2, 3}, info: lbtest.KeyInfo},
		{name: "picks at random without a hash key", weights: []uint32{1, 1, 1}, info: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eps := lbtest.Endpoints(tc.weights...)
			got := lbtest.Count(t, New(eps, lb.DefaultConfig()), keys, tc.info)
			lbtest.CheckShares(t, got, lbtest.WeightShares(eps), keys, 0.05)
		})
	}
}

func TestSameKeySameEndpoint(t *testing.T) {
	eps := lbtest.Equal(5)
	p1, p2 := New(eps, lb.DefaultConfig()), New(lbtest.Equal(5), lb.DefaultConfig())
	for i := range 1000 {
		a, _ := p1.Pick(lbtest.KeyInfo(i))
		b, _ := p1.Pick(lbtest.KeyInfo(i))
		c, _ := p2.Pick(lbtest.KeyInfo(i))
		if a != b || a.Address != c.Address {
			t.Fatalf("key %d: picks %s, %s and (rebuilt) %s, want one endpoint", i, a.Address, b.Address, c.Address)
		}
	}
}

func TestBoundedLoadCapsHotKey(t *testing.T) {
	const held = 300
	eps := lbtest.Equal(3)
	cfg := lb.DefaultConfig()
	cfg.RingHash.BoundedLoadFactor = 1.25
	p := New(eps, cfg)
	hot := lbtest.KeyInfo(42) // every request carries the same key
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
	first, _ := New(eps, lb.DefaultConfig()).Pick(hot)
	if first.InFlight() < held/3 {
		t.Errorf("the key's own endpoint %s holds %d, want it filled to capacity first", first.Address, first.InFlight())
	}
}

func BenchmarkPick(b *testing.B) { lbtest.BenchmarkPick(b, Builder{}, true) }

func BenchmarkPickBoundedLoad(b *testing.B) {
	lbtest.BenchmarkPick(b, boundedBuilder{}, true)
}

type boundedBuilder struct{ Builder }

func (boundedBuilder) Build(eps []*lb.Endpoint, cfg lb.Config) lb.Picker {
	cfg.RingHash.BoundedLoadFactor = 1.25
	return New(eps, cfg)
}

// Under the bound a key stays where the plain ring puts it.
func TestBoundedLoadKeepsKeysUnderTheBound(t *testing.T) {
	eps := lbtest.Equal(4)
	plain := New(lbtest.Equal(4), lb.DefaultConfig())
	cfg := lb.DefaultConfig()
	cfg.RingHash.BoundedLoadFactor = 1.25
	bounded := New(eps, cfg)
	for _, e := range eps { // a steady, even load
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
