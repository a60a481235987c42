package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// steadyLoad is the background GET load of the resilience scenarios:
// four keep-alive clients, each pacing its requests, bounded in time
// (90s plus extra). hashed adds an x-user header from 64 keys.
func steadyLoad(t *testing.T, url string, hashed bool, extra time.Duration) *harness.Load {
	t.Helper()
	o := harness.LoadOptions{URL: url, Concurrency: 4, Pace: 2 * time.Millisecond, Duration: 90*time.Second + extra}
	if hashed {
		o.Header = func(n int) http.Header { return http.Header{"X-User": {fmt.Sprintf("user-%d", n%64)}} }
	}
	return harness.StartLoad(t, o)
}

// waitRequests waits until load has sent at least n more requests.
func waitRequests(t *testing.T, l *harness.Load, n int) {
	t.Helper()
	target := l.Snapshot().Sent + n
	harness.Eventually(t, harness.DefaultTimeout, fmt.Sprintf("%d more requests", n), func() bool {
		return l.Snapshot().Sent >= target
	})
}

// Issue 5 and 6: kill -9 one of three instances under steady GET load,
// per strategy, as an app crash (the Node.js process) and as a host crash
// (the app and its sidecar): no client sees an error.
func TestKillOneOfThreeUnderLoad(t *testing.T) {
	t.Parallel()
	strategies := []struct{ name, hashKey string }{
		{"round_robin", ""}, {"least_request", ""}, {"ring_hash", "header: x-user"},
	}
	for _, s := range strategies {
		for _, crash := range []string{"app", "host"} {
			t.Run(s.name+" "+crash+" crash", func(t *testing.T) {
				t.Parallel()
				m := harness.StartMesh(t, 3, harness.MeshOptions{})
				cluster := clusterFor(s.name)
				m.ApplyRoute(t, strategyRoute(s.name, s.hashKey), map[string][]int{cluster: nil})
				load := steadyLoad(t, m.URL(), s.hashKey != "", 0)
				waitRequests(t, load, 300)

				const victim = 0
				killedAt := time.Now()
				if crash == "app" {
					m.KillApp(victim)
				} else {
					m.CrashHost(victim)
				}
				out := m.WaitRoutable(t, m.Client, cluster, 1, 2)
				waitRequests(t, load, 600)
				r := load.Stop()
				last := r.LastSeen[m.ID(victim)].Sub(killedAt)
				t.Logf("%s, %s crash of %s: out of the client's rotation %s after kill -9 (last answer from it %s after); %s",
					s.name, crash, m.ID(victim), out.Round(time.Millisecond), last.Round(time.Millisecond), r)
				if r.Failures() != 0 {
					t.Errorf("client-visible failures = %d, want 0", r.Failures())
				}
				if slices.Contains([]string{"round_robin", "least_request"}, s.name) && r.Share(m.ID(1)) == 0 {
					t.Errorf("no traffic reached %s", m.ID(1))
				}
			})
		}
	}
}
