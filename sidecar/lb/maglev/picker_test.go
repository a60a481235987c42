package maglev

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/internal/lbtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTableShares(t *testing.T) {
	tests := []struct {
		name    string
		weights []uint32
		size    uint64
		tol     float64
	}{
		{name: "fills a small table evenly", weights: []uint32{1, 1, 1}, size: 7, tol: 0.15},
		{name: "splits the default table evenly", weights: []uint32{1, 1, 1}, tol: 0.001},
		{name: "splits the table by weight", weights: []uint32{1, 2, 3}, tol: 0.001},
		{name: "gives a light endpoint its share", weights: []uint32{1, 100}, tol: 0.001},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eps := lbtest.Endpoints(tc.weights...)
			size := lb.MaglevConfig{TableSize: tc.size}.WithDefaults().TableSize
			table := newTable(eps, size)
			got := make(map[string]int)
			for _, idx := range table {
				got[eps[idx].Address]++
			}
			lbtest.CheckShares(t, got, lbtest.WeightShares(eps), int(size), tc.tol)
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
		{name: "picks at random without a hash key", weights: []uint32{1, 1, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eps := lbtest.Endpoints(tc.weights...)
			got := lbtest.Count(t, New(eps, lb.DefaultConfig()), keys, tc.info)
			lbtest.CheckShares(t, got, lbtest.WeightShares(eps), keys, 0.03)
		})
	}
}

func TestSameKeySameEndpoint(t *testing.T) {
	p1, p2 := New(lbtest.Equal(5), lb.DefaultConfig()), New(lbtest.Equal(5), lb.DefaultConfig())
	for i := range 1000 {
		a, _ := p1.Pick(lbtest.KeyInfo(i))
		b, _ := p1.Pick(lbtest.KeyInfo(i))
		c, _ := p2.Pick(lbtest.KeyInfo(i))
		if a != b || a.Address != c.Address {
			t.Fatalf("key %d: picks %s, %s and (rebuilt) %s, want one endpoint", i, a.Address, b.Address, c.Address)
		}
	}
}

func TestRemapOnEndpointLeaving(t *testing.T) {
	moved, survivorsMoved := lbtest.Remap(t, Builder{}, lb.DefaultConfig(), 3, 10000)
	if max := 1.0/3 + 0.05; moved > max {
		t.Errorf("%.3f of keys moved, want <= %.3f", moved, max)
	}
	t.Logf("%.4f of keys moved, %d from surviving endpoints", moved, survivorsMoved)
}

func BenchmarkPick(b *testing.B) { lbtest.BenchmarkPick(b, Builder{}, true) }
