package random

import (
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/internal/lbtest"
)

func TestPickDistribution(t *testing.T) {
	const picks = 20000
	tests := []struct {
		name    string
		weights []uint32
	}{
		{name: "spreads evenly over equal weights", weights: []uint32{1, 1, 1}},
		{name: "honours weights 1:2:3", weights: []uint32{1, 2, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eps := lbtest.Endpoints(tc.weights...)
			got := lbtest.Count(t, New(eps, lb.DefaultConfig()), picks, nil)
			lbtest.CheckShares(t, got, lbtest.WeightShares(eps), picks, 0.03)
		})
	}
}

func BenchmarkPick(b *testing.B) { lbtest.BenchmarkPick(b, Builder{}, false) }
