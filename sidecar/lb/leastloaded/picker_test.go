package leastloaded

import (
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/internal/lbtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock replaces timeNow with a settable clock for one test.
func clock(t *testing.T) *time.Time {
	t.Helper()
	now := time.Unix(1000, 0)
	old := timeNow
	timeNow = func() time.Time { return now }
	t.Cleanup(func() { timeNow = old })
	return &now
}

func cfg() lb.Config {
	c := lb.DefaultConfig()
	c.LeastLoaded = lb.LeastLoadedConfig{BlackoutPeriod: 10 * time.Second, WeightExpirationPeriod: time.Minute, WeightUpdatePeriod: time.Second}
	return c
}

// report has endpoint e report utilization u at qps at now.
func report(e *lb.Endpoint, now time.Time, u, qps float64) {
	e.ReportLoad(lb.LoadReport{ApplicationUtilization: u, QPS: qps}, now)
}

// hold begins n requests on e until the test ends.
func hold(t *testing.T, e *lb.Endpoint, n int) {
	for range n {
		e.Begin()
	}
	t.Cleanup(func() {
		for range n {
			e.End()
		}
	})
}

func TestPickFollowsReportedLoad(t *testing.T) {
	now := clock(t)
	eps := lbtest.Equal(3)
	p := New(eps, cfg())
	// The same traffic (100 rps) costs endpoint 2 four times the event loop.
	for _, e := range eps[:2] {
		report(e, *now, 0.2, 100)
	}
	report(eps[2], *now, 0.8, 100)

	got := lbtest.Count(t, p, 9000, nil)
	t.Run("no effect during the blackout", func(t *testing.T) {
		lbtest.CheckShares(t, got, map[string]float64{lbtest.Addr(0): 1.0 / 3, lbtest.Addr(1): 1.0 / 3, lbtest.Addr(2): 1.0 / 3}, 9000, 0.03)
	})

	*now = now.Add(11 * time.Second)
	for _, e := range eps[:2] {
		report(e, *now, 0.2, 100)
	}
	report(eps[2], *now, 0.8, 100)
	if w := p.Weights(); w[0] != lb.MaxWeight || w[2] != lb.MaxWeight/4 {
		t.Errorf("weights = %v, want [%d %d %d]", w, lb.MaxWeight, lb.MaxWeight, lb.MaxWeight/4)
	}
	t.Run("idle, the light endpoint would wait longest and gets nothing", func(t *testing.T) {
		got := lbtest.Count(t, p, 9000, nil)
		lbtest.CheckShares(t, got, map[string]float64{lbtest.Addr(0): 0.5, lbtest.Addr(1): 0.5, lbtest.Addr(2): 0}, 9000, 0.03)
	})
	t.Run("it takes a request whenever it is a candidate and the heavy ones hold 4", func(t *testing.T) {
		// Expected waits 5/4 against 1/1. Endpoint 2 is a candidate with
		// probability 1/9 + 8/9 × 1/5 (drawn second from the other two).
		hold(t, eps[0], 4)
		hold(t, eps[1], 4)
		got := lbtest.Count(t, p, 9000, nil)
		lbtest.CheckShares(t, got, map[string]float64{lbtest.Addr(2): 1.0/9 + 8.0/45}, 9000, 0.03)
	})

	*now = now.Add(2 * time.Minute)
	got = lbtest.Count(t, p, 9000, nil)
	t.Run("even again once the reports expire", func(t *testing.T) {
		lbtest.CheckShares(t, got, map[string]float64{lbtest.Addr(0): 1.0 / 3, lbtest.Addr(1): 1.0 / 3, lbtest.Addr(2): 1.0 / 3}, 9000, 0.03)
	})
}

func TestEndpointWithoutReportTakesTheMean(t *testing.T) {
	now := clock(t)
	eps := lbtest.Equal(3)
	report(eps[0], *now, 0.1, 100) // weight 1000
	report(eps[1], *now, 0.5, 100) // weight 200
	*now = now.Add(11 * time.Second)
	p := New(eps, cfg())
	// Endpoint 2 has no report: the mean, 600, scaled to the heaviest.
	// Endpoint 1's fifth of the heaviest is raised to the floor, a quarter.
	if got, want := p.Weights(), []uint32{lb.MaxWeight, lb.MaxWeight / 4, lb.MaxWeight * 3 / 5}; !slices.Equal(got, want) {
		t.Errorf("weights = %v, want %v", got, want)
	}
}

func TestPickPrefersLeastExpectedWait(t *testing.T) {
	t.Run("equal weights: never the busier of two", func(t *testing.T) {
		clock(t)
		eps := lbtest.Equal(2)
		hold(t, eps[0], 1)
		got := lbtest.Count(t, New(eps, cfg()), 2000, nil)
		lbtest.CheckShares(t, got, map[string]float64{lbtest.Addr(0): 0, lbtest.Addr(1): 1}, 2000, 0)
	})
	t.Run("a four times heavier endpoint takes up to three more in flight", func(t *testing.T) {
		now := clock(t)
		eps := lbtest.Equal(2)
		report(eps[0], *now, 0.1, 100)
		report(eps[1], *now, 0.4, 100)
		*now = now.Add(11 * time.Second)
		report(eps[0], *now, 0.1, 100)
		report(eps[1], *now, 0.4, 100)
		p := New(eps, cfg())
		hold(t, eps[0], 2) // 3/4 against 1/1
		got := lbtest.Count(t, p, 2000, nil)
		lbtest.CheckShares(t, got, map[string]float64{lbtest.Addr(0): 1}, 2000, 0)
		hold(t, eps[0], 2) // 5/4 against 1/1
		got = lbtest.Count(t, p, 2000, nil)
		lbtest.CheckShares(t, got, map[string]float64{lbtest.Addr(1): 1}, 2000, 0)
	})
}

func TestPickAvoidsExcluded(t *testing.T) {
	clock(t)
	eps := lbtest.Equal(3)
	p := New(eps, cfg())
	var info lb.PickInfo
	info.Exclude(lbtest.Addr(0))
	info.Exclude(lbtest.Addr(1))
	for range 100 {
		if e, _ := p.Pick(&info); e.Address != lbtest.Addr(2) {
			t.Fatalf("Pick = %s, want the only endpoint not excluded", e.Address)
		}
	}
	info.Exclude(lbtest.Addr(2))
	if _, err := p.Pick(&info); err != nil {
		t.Errorf("Pick with everything excluded: %v, want an excluded endpoint", err)
	}
}

func TestPickUnhealthyAndEmpty(t *testing.T) {
	clock(t)
	if _, err := New(nil, cfg()).Pick(nil); err != lb.ErrNoEndpoint {
		t.Errorf("Pick on no endpoints: %v, want ErrNoEndpoint", err)
	}
	eps := lbtest.Equal(3)
	eps[1].Healthy = false
	got := lbtest.Count(t, New(eps, cfg()), 1000, nil)
	if got[lbtest.Addr(1)] != 0 {
		t.Errorf("unhealthy endpoint picked %d times", got[lbtest.Addr(1)])
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	clock(t)
	p := New(lbtest.Equal(4), cfg())
	if n := testing.AllocsPerRun(1000, func() { p.Pick(nil) }); n != 0 {
		t.Errorf("Pick allocates %v times between weight updates", n)
	}
}

func BenchmarkPick(b *testing.B) { lbtest.BenchmarkPick(b, Builder{}, false) }

// A blocked event loop takes requests and answers none of them: once an
// endpoint owes answers for longer than a few of its usual times to first
// byte, it loses every comparison, however few requests it holds, and
// wins again with its next answer.
func TestPickPassesOverEndpointThatStoppedAnswering(t *testing.T) {
	now := clock(t)
	eps := lbtest.Equal(3)
	p := New(eps, cfg())
	ns := func() int64 { return now.UnixNano() }
	// Every endpoint answered in 2 ms so far.
	for _, e := range eps {
		at := ns()
		e.Sent(at)
		e.Answered(at, at+int64(2*time.Millisecond), true)
	}
	// Endpoint 0 took two requests and went quiet; the others hold three
	// each and answer.
	sent := ns()
	for range 2 {
		eps[0].Begin()
		eps[0].Sent(sent)
	}
	hold(t, eps[1], 3)
	hold(t, eps[2], 3)

	*now = now.Add(4 * time.Millisecond) // within 4 × 2 ms, bounded below by 5 ms
	got := lbtest.Count(t, p, 9000, nil)
	if got[lbtest.Addr(0)] == 0 {
		t.Fatalf("after 4 ms the endpoint with the fewest requests got none: %v", got)
	}

	*now = now.Add(5 * time.Millisecond) // 9 ms unanswered: more than 8 ms
	got = lbtest.Count(t, p, 9000, nil)
	if got[lbtest.Addr(0)] != 0 {
		t.Errorf("an endpoint unanswered for 9 ms (usual 2 ms) still got %d of 9000 picks: %v", got[lbtest.Addr(0)], got)
	}

	eps[0].Answered(sent, ns(), true)
	eps[0].End()
	got = lbtest.Count(t, p, 9000, nil)
	eps[0].Answered(sent, ns(), true)
	eps[0].End()
	if got[lbtest.Addr(0)] < 3000 {
		t.Errorf("once it answered, the idle endpoint got %d of 9000 picks, want the most: %v", got[lbtest.Addr(0)], got)
	}
}

// One long request on a free event loop is not a block: an endpoint
// owing one answer keeps its share however long it takes.
func TestPickKeepsEndpointWithOneLongRequest(t *testing.T) {
	now := clock(t)
	eps := lbtest.Equal(2)
	p := New(eps, cfg())
	eps[0].Begin()
	eps[0].Sent(now.UnixNano())
	t.Cleanup(func() {
		eps[0].Answered(0, 0, false)
		eps[0].End()
	})
	hold(t, eps[1], 1)
	*now = now.Add(time.Second)
	got := lbtest.Count(t, p, 9000, nil)
	lbtest.CheckShares(t, got, map[string]float64{lbtest.Addr(0): 0.5, lbtest.Addr(1): 0.5}, 9000, 0.03)
}

// Every endpoint silent (the proxy itself was descheduled, or every
// instance is blocked): the picks spread as without the signal.
func TestPickWhenNothingAnswers(t *testing.T) {
	now := clock(t)
	eps := lbtest.Equal(2)
	p := New(eps, cfg())
	for _, e := range eps {
		for range 2 {
			e.Begin()
			e.Sent(now.UnixNano())
		}
	}
	t.Cleanup(func() {
		for _, e := range eps {
			for range 2 {
				e.Answered(0, 0, false)
				e.End()
			}
		}
	})
	*now = now.Add(time.Second)
	got := lbtest.Count(t, p, 9000, nil)
	lbtest.CheckShares(t, got, map[string]float64{lbtest.Addr(0): 0.5, lbtest.Addr(1): 0.5}, 9000, 0.03)
}
