package roundrobin

import (
	"errors"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/internal/lbtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPickDistribution(t *testing.T) {
	const picks = 10000
	tests := []struct {
		name    string
		weights []uint32
		tol     float64
	}{
		{name: "spreads equal weights within 1 %", weights: []uint32{1, 1, 1}, tol: 0.01},
		{name: "honours weights 1:2:3 within 2 %", weights: []uint32{1, 2, 3}, tol: 0.02},
		{name: "treats weight 0 as 1", weights: []uint32{0, 1}, tol: 0.01},
		{name: "honours large co-prime weights", weights: []uint32{10000, 9999, 7, 1}, tol: 0.01},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eps := lbtest.Endpoints(tc.weights...)
			got := lbtest.Count(t, New(eps, lb.DefaultConfig()), picks, nil)
			lbtest.CheckShares(t, got, lbtest.WeightShares(eps), picks, tc.tol)
		})
	}
}

func TestScheduleIsNginxSmooth(t *testing.T) {
	tests := []struct {
		name    string
		weights []uint32
		want    []uint32
	}{
		// The example from nginx commit 52327e0627f4 ("smooth weighted round robin").
		{name: "interleaves 5:1:1", weights: []uint32{5, 1, 1}, want: []uint32{0, 0, 1, 0, 2, 0, 0}},
		{name: "rotates equal weights in order", weights: []uint32{3, 3, 3}, want: []uint32{0, 1, 2}},
		{name: "interleaves 1:2:3", weights: []uint32{1, 2, 3}, want: []uint32{2, 1, 0, 2, 1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, schedule(tc.weights)); diff != "" {
				t.Errorf("schedule(%v) (-want +got):\n%s", tc.weights, diff)
			}
		})
	}
}

func TestScheduleMatchesNaiveNginx(t *testing.T) {
	weights := []uint32{7, 3, 3, 1, 7, 2, 9}
	if diff := cmp.Diff(naiveNginx(weights), schedule(weights)); diff != "" {
		t.Errorf("schedule (-naive +got):\n%s", diff)
	}
}

// naiveNginx is ngx_http_upstream_get_peer run for one period.
func naiveNginx(weights []uint32) []uint32 {
	cur := make([]int64, len(weights))
	var total int64
	for _, w := range weights {
		total += int64(w)
	}
	var out []uint32
	for range total {
		best := -1
		for i, w := range weights {
			cur[i] += int64(w)
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out = append(out, uint32(best))
	}
	return out
}

func TestScheduleCapsLongPeriods(t *testing.T) {
	ws := make([]uint32, 1000)
	for i := range ws {
		ws[i] = uint32(1 + i*10)
	}
	if got := len(schedule(ws)); got > maxPeriod {
		t.Errorf("schedule length = %d, want <= %d", got, maxPeriod)
	}
}

func TestPickSpreadsEvenlyAcrossGoroutines(t *testing.T) {
	const goroutines, perG = 8, 3000 // 24000 picks: a multiple of the period 6
	eps := lbtest.Endpoints(1, 2, 3)
	p := New(eps, lb.DefaultConfig())
	counts := make([]map[string]int, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			counts[g] = make(map[string]int)
			for range perG {
				e, err := p.Pick(nil)
				if err != nil {
					return // reported below as a short count
				}
				counts[g][e.Address]++
			}
		})
	}
	wg.Wait()
	got := make(map[string]int)
	for _, c := range counts {
		for a, n := range c {
			got[a] += n
		}
	}
	want := map[string]int{lbtest.Addr(0): 4000, lbtest.Addr(1): 8000, lbtest.Addr(2): 12000}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("picks per endpoint (-want +got):\n%s", diff)
	}
}

func TestPickEmpty(t *testing.T) {
	if _, err := New(nil, lb.DefaultConfig()).Pick(nil); !errors.Is(err, lb.ErrNoEndpoint) {
		t.Errorf("Pick on empty set: err = %v, want ErrNoEndpoint", err)
	}
}

func BenchmarkPick(b *testing.B) { lbtest.BenchmarkPick(b, Builder{}, false) }
