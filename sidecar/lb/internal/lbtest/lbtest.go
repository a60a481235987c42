// Package lbtest holds helpers shared by the load balancer tests.
package lbtest

import (
	"fmt"
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/lb"
)

// Endpoints returns healthy endpoints with the given weights, addressed
// "10.0.0.<i>:8080" and each with its own Load.
func Endpoints(weights ...uint32) []*lb.Endpoint {
	eps := make([]*lb.Endpoint, len(weights))
	for i, w := range weights {
		eps[i] = &lb.Endpoint{Address: Addr(i), Weight: w, Healthy: true, Load: new(lb.Load)}
	}
	return eps
}

// Equal returns n healthy endpoints of weight 1.
func Equal(n int) []*lb.Endpoint {
	ws := make([]uint32, n)
	for i := range ws {
		ws[i] = 1
	}
	return Endpoints(ws...)
}

// Addr returns the address of the i-th endpoint made by Endpoints.
func Addr(i int) string { return fmt.Sprintf("10.0.0.%d:8080", i) }

// Count picks n times and counts picks per address. info returns the
// PickInfo of the i-th pick and may be nil.
func Count(t testing.TB, p lb.Picker, n int, info func(i int) *lb.PickInfo) map[string]int {
	t.Helper()
	got := make(map[string]int)
	for i := range n {
		var pi *lb.PickInfo
		if info != nil {
			pi = info(i)
		}
		e, err := p.Pick(pi)
		if err != nil {
			t.Fatalf("Pick #%d: %v", i, err)
		}
		got[e.Address]++
	}
	return got
}

// KeyInfo returns a PickInfo hashing the key "key-<i>".
func KeyInfo(i int) *lb.PickInfo {
	pi := &lb.PickInfo{}
	pi.SetHash(lb.HashString(fmt.Sprintf("key-%d", i)))
	return pi
}

// CheckShares fails t unless every address's share of total is within tol
// of want (weights proportional shares).
func CheckShares(t testing.TB, got map[string]int, want map[string]float64, total int, tol float64) {
	t.Helper()
	for addr, w := range want {
		share := float64(got[addr]) / float64(total)
		if share < w-tol || share > w+tol {
			t.Errorf("%s got %.4f of picks, want %.4f ± %.4f (all: %v)", addr, share, w, tol, got)
		}
	}
}

// WeightShares returns each endpoint's weight share, keyed by address.
func WeightShares(eps []*lb.Endpoint) map[string]float64 {
	var sum float64
	for _, e := range eps {
		sum += float64(e.EffectiveWeight())
	}
	out := make(map[string]float64, len(eps))
	for _, e := range eps {
		out[e.Address] = float64(e.EffectiveWeight()) / sum
	}
	return out
}
