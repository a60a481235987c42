package leastrequest

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/internal/lbtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// simulate picks n times; every request stays in flight until window more
// requests have started, as with equal-latency backends under steady load.
func simulate(t *testing.T, p lb.Picker, n, window int) map[string]int {
	t.Helper()
	got := make(map[string]int)
	var open []*lb.Endpoint
	for i := range n {
		e, err := p.Pick(nil)
		if err != nil {
			t.Fatalf("Pick #%d: %v", i, err)
		}
		e.Begin()
		got[e.Address]++
		if open = append(open, e); len(open) > window {
			open[0].End()
			open = open[1:]
		}
	}
	for _, e := range open {
		e.End()
	}
	return got
}

func TestPickAvoidsBusyEndpoint(t *testing.T) {
	const picks = 10000
	tests := []struct {
		name string
		n    int
	}{
		{name: "exact scan over 3 endpoints", n: 3},
		{name: "power of two choices over 100 endpoints", n: 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eps := lbtest.Equal(tc.n)
			for range 200 { // a stuck backend holding many requests
				eps[0].Begin()
			}
			got := simulate(t, New(eps, lb.DefaultConfig()), picks, 30)
			if share := float64(got[eps[0].Address]) / picks; share > 0.15 {
				t.Errorf("busy endpoint got %.3f of picks, want <= 0.15", share)
			}
		})
	}
}

func TestPickSharesEvenly(t *testing.T) {
	const picks = 10000
	tests := []struct {
		name    string
		weights []uint32
		window  int
		tol     float64
	}{
		{name: "idle equal endpoints share evenly (random tie break)", weights: []uint32{1, 1, 1}, window: 0, tol: 0.03},
		{name: "loaded equal endpoints share evenly", weights: []uint32{1, 1, 1}, window: 30, tol: 0.02},
		{name: "loaded endpoints share by weight", weights: []uint32{1, 1, 2}, window: 40, tol: 0.05},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eps := lbtest.Endpoints(tc.weights...)
			got := simulate(t, New(eps, lb.DefaultConfig()), picks, tc.window)
			lbtest.CheckShares(t, got, lbtest.WeightShares(eps), picks, tc.tol)
		})
	}
}

func TestPickCountsPendingConnects(t *testing.T) {
	eps := lbtest.Equal(2)
	eps[0].BeginConnect()
	defer eps[0].EndConnect()
	p := New(eps, lb.DefaultConfig())
	for range 100 {
		if e, _ := p.Pick(nil); e != eps[1] {
			t.Fatalf("picked %s with a connect pending, want the idle %s", e.Address, eps[1].Address)
		}
	}
}

func TestCountersSurviveRebuild(t *testing.T) {
	store := lb.NewLoadStore()
	endpoints := func() []*lb.Endpoint {
		eps := []*lb.Endpoint{
			{Address: "a:1", Weight: 1, Healthy: true},
			{Address: "b:1", Weight: 1, Healthy: true},
		}
		store.Attach(eps)
		return eps
	}
	old := endpoints()
	old[0].Begin() // in flight across the rebuild
	p := New(endpoints(), lb.DefaultConfig())
	for range 100 {
		if e, _ := p.Pick(nil); e.Address != "b:1" {
			t.Fatalf("picked %s, want b:1 (a:1 has a request in flight from the old picker)", e.Address)
		}
	}
	old[0].End()
	if e, _ := p.Pick(nil); e.InFlight() != 0 {
		t.Errorf("in flight after End = %d, want 0", e.InFlight())
	}
}

func BenchmarkPick(b *testing.B) { lbtest.BenchmarkPick(b, Builder{}, false) }
