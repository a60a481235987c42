package gossip_test

import (
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/registry/gossip"
)

// TestSoakFailureDetection measures, over SHOAL_SOAK_RUNS (default 20) runs
// on fresh 10-member clusters, the time from a hard stop (kill -9) of one
// member until every other member has it out of rotation, and until every
// other member declares it dead; then it pauses members for 2 s
// (SHOAL_SOAK_PAUSES, default 10) and requires 0 dead events. It reports
// p50/p99. Opt-in: SHOAL_SOAK=1 go test -run Soak -v ./registry/gossip/
func TestSoakFailureDetection(t *testing.T) {
	if os.Getenv("SHOAL_SOAK") == "" {
		t.Skip("soak: set SHOAL_SOAK=1 (SHOAL_SOAK_RUNS, SHOAL_SOAK_PAUSES); `make test` runs a short one (make soak-smoke)")
	}
	const members = 10
	runs := envInt("SHOAL_SOAK_RUNS", 20)
	if runs == 0 {
		pauseSoak(t, members, envInt("SHOAL_SOAK_PAUSES", 10))
		return
	}
	var suspect, dead []time.Duration
	for i := range runs {
		s, d := crashOnce(t, members)
		suspect, dead = append(suspect, s), append(dead, d)
		t.Logf("run %2d: out of rotation everywhere %v, dead everywhere %v", i, s, d)
	}
	t.Logf("crash → out of rotation on all %d peers: p50 %v p99 %v max %v",
		members-1, pct(suspect, 50), pct(suspect, 99), pct(suspect, 100))
	t.Logf("crash → dead on all peers: p50 %v p99 %v", pct(dead, 50), pct(dead, 99))
	if p := pct(suspect, 99); p >= time.Second {
		t.Errorf("p99 crash → out of rotation = %v, want < 1s", p)
	}
	pauseSoak(t, members, envInt("SHOAL_SOAK_PAUSES", 10))
}

// crashOnce starts a cluster, hard-stops its last member and returns the
// times until every peer has it unroutable and dead.
func crashOnce(t *testing.T, n int) (suspect, dead time.Duration) {
	t.Helper()
	ms := startCluster(t, n, func(c *gossip.Config) { c.Name = "crash-" + c.Name })
	victim, key := ms[n-1], instKey(n-1)
	var mu sync.Mutex
	out, gone := map[string]time.Time{}, map[string]time.Time{}
	for _, m := range ms[:n-1] {
		cancel := m.Subscribe(func(ev gossip.Event) {
			if ev.Name != victim.Name() {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if _, ok := out[m.Name()]; !ok && ev.State != gossip.MemberAlive {
				out[m.Name()] = time.Now()
			}
			if ev.State == gossip.MemberDead {
				gone[m.Name()] = time.Now()
			}
		})
		t.Cleanup(cancel)
	}
	start := time.Now()
	_ = victim.Close()
	waitFor(t, defaultTestTimeout, "dead everywhere", func() bool {
		return everyone(ms[:n-1], key, is(gossip.StatusDead))
	})
	mu.Lock()
	defer mu.Unlock()
	for _, at := range out {
		suspect = max(suspect, at.Sub(start))
	}
	for _, at := range gone {
		dead = max(dead, at.Sub(start))
	}
	for _, m := range ms {
		_ = m.Close()
	}
	return suspect, dead
}

// pauseSoak pauses a member for 2 s, pauses times, and fails on any dead
// event anywhere.
func pauseSoak(t *testing.T, n, pauses int) {
	ms := startCluster(t, n, func(c *gossip.Config) { c.Name = "pause-" + c.Name })
	recs := make([]*recorder, n)
	for i, m := range ms {
		recs[i] = record(t, m)
	}
	for i := range pauses {
		p := ms[i%n]
		p.BlackholeForTest(2 * time.Second)
		waitFor(t, defaultTestTimeout, "suspected", func() bool {
			return suspectedSomewhere(ms, p, instKey(i%n))
		})
		took := waitFor(t, defaultTestTimeout, "refuted everywhere", func() bool {
			for _, m := range ms {
				if countState(m, gossip.MemberAlive) != n {
					return false
				}
			}
			return true
		})
		t.Logf("pause %d (%s, 2 s): all alive again %v after suspicion", i, p.Name(), took)
	}
	for i, r := range recs {
		if r.anyState(gossip.MemberDead) {
			t.Errorf("member %d saw a dead event during 2 s pauses", i)
		}
	}
}

func suspectedSomewhere(ms []*gossip.Member, p *gossip.Member, key gossip.InstanceKey) bool {
	for _, m := range ms {
		if s, _ := m.Health(key); m != p && s == gossip.StatusSuspect {
			return true
		}
	}
	return false
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}
