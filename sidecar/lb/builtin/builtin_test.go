package builtin

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/internal/lbtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func builders(t *testing.T) []lb.Builder {
	t.Helper()
	var out []lb.Builder
	for _, name := range Names() {
		b, err := Builder(name)
		if err != nil {
			t.Fatal(err)
		}
		if b.Name() != name {
			t.Fatalf("Builder(%q).Name() = %q", name, b.Name())
		}
		out = append(out, b)
	}
	return out
}

func TestBuilderRejectsUnknownName(t *testing.T) {
	if _, err := Builder("fastest"); err == nil {
		t.Error("Builder(\"fastest\") succeeded, want an error")
	}
}

// withHealth returns equal endpoints, healthy where health[i] is true.
func withHealth(health ...bool) []*lb.Endpoint {
	eps := lbtest.Equal(len(health))
	for i, h := range health {
		eps[i].Healthy = h
	}
	return eps
}

func TestPanicThreshold(t *testing.T) {
	tests := []struct {
		name      string
		health    []bool
		threshold float64
		want      []int // endpoints that must receive picks; others none
		wantErr   error
	}{
		{name: "picks only healthy endpoints", health: []bool{true, true, false}, threshold: 50, want: []int{0, 1}},
		{name: "picks all endpoints when fewer than half are healthy", health: []bool{true, false, false}, threshold: 50, want: []int{0, 1, 2}},
		{name: "picks all endpoints when none is healthy", health: []bool{false, false}, threshold: 50, want: []int{0, 1}},
		{name: "stays on healthy endpoints with panic mode disabled", health: []bool{true, false, false}, threshold: 0, want: []int{0}},
		{name: "fails with panic mode disabled and nothing healthy", health: []bool{false, false}, threshold: 0, wantErr: lb.ErrNoEndpoint},
		{name: "fails on an empty set", threshold: 50, wantErr: lb.ErrNoEndpoint},
	}
	for _, b := range builders(t) {
		for _, tc := range tests {
			t.Run(b.Name()+"/"+tc.name, func(t *testing.T) {
				eps := withHealth(tc.health...)
				p := b.Build(eps, lb.Config{PanicThreshold: tc.threshold})
				if tc.wantErr != nil {
					if _, err := p.Pick(lbtest.KeyInfo(0)); !errors.Is(err, tc.wantErr) {
						t.Fatalf("Pick: err = %v, want %v", err, tc.wantErr)
					}
					return
				}
				got := lbtest.Count(t, p, 3000, lbtest.KeyInfo)
				for _, i := range tc.want {
					if got[eps[i].Address] == 0 {
						t.Errorf("%s got no picks (all: %v)", eps[i].Address, got)
					}
				}
				if sum := sumOf(got, eps, tc.want); sum != 3000 {
					t.Errorf("%d of 3000 picks went to endpoints outside %v (all: %v)", 3000-sum, tc.want, got)
				}
			})
		}
	}
}

func sumOf(got map[string]int, eps []*lb.Endpoint, idx []int) int {
	sum := 0
	for _, i := range idx {
		sum += got[eps[i].Address]
	}
	return sum
}

func TestExclusionForRetries(t *testing.T) {
	for _, b := range builders(t) {
		t.Run(b.Name()+"/never picks the same host twice", func(t *testing.T) {
			p := b.Build(lbtest.Equal(3), lb.DefaultConfig())
			for i := range 500 {
				info := lbtest.KeyInfo(i)
				seen := make(map[string]bool)
				for attempt := range 3 {
					e, err := p.Pick(info)
					if err != nil {
						t.Fatal(err)
					}
					if seen[e.Address] {
						t.Fatalf("request %d attempt %d: %s again", i, attempt, e.Address)
					}
					seen[e.Address] = true
					info.Exclude(e.Address)
				}
			}
		})
		t.Run(b.Name()+"/returns an excluded host when nothing else is left", func(t *testing.T) {
			eps := lbtest.Equal(1)
			info := lbtest.KeyInfo(1)
			info.Exclude(eps[0].Address)
			if e, err := b.Build(eps, lb.DefaultConfig()).Pick(info); err != nil || e != eps[0] {
				t.Errorf("Pick = %v, %v; want %s", e, err, eps[0].Address)
			}
		})
	}
}

// TestConcurrentPickAndRebuild runs under -race: pickers are read by many
// goroutines while the owner builds new ones and swaps them in.
func TestConcurrentPickAndRebuild(t *testing.T) {
	const pickers, picks, rebuilds = 8, 2000, 50
	for _, b := range builders(t) {
		t.Run(b.Name(), func(t *testing.T) {
			store := lb.NewLoadStore()
			build := func(n int) lb.Picker {
				eps := lbtest.Equal(n)
				store.Attach(eps)
				return b.Build(eps, lb.DefaultConfig())
			}
			var cur atomic.Pointer[lb.Picker]
			p := build(5)
			cur.Store(&p)
			errc := make(chan error, pickers)
			var wg sync.WaitGroup
			for g := range pickers {
				wg.Go(func() { errc <- pickLoop(cur.Load, g, picks) })
			}
			for i := range rebuilds {
				p := build(3 + i%5)
				cur.Store(&p)
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func pickLoop(load func() *lb.Picker, g, n int) error {
	for i := range n {
		info := lbtest.KeyInfo(g*n + i)
		if i%7 == 0 {
			info.Exclude(lbtest.Addr(0))
		}
		e, err := (*load()).Pick(info)
		if err != nil {
			return err
		}
		e.Begin()
		e.End()
	}
	return nil
}
