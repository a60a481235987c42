package e2e

import (
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// Issue 6: a rolling restart of every instance under load, SHOAL_E2E_ROLLS
// times (default 1; issue 6 asks for 3): SIGTERM the sidecar (it
// deregisters, turns unhealthy in gossip and drains), then the app,
// restart both, wait until the client routes to it again, next. No
// request may fail.
func TestRollingRestartUnderLoad(t *testing.T) {
	t.Parallel()
	rolls := envInt(t, "SHOAL_E2E_ROLLS", 1)
	m := harness.StartMesh(t, 3, harness.MeshOptions{})
	load := steadyLoad(t, m.URL(), false, time.Duration(rolls)*time.Minute)
	waitRequests(t, load, 200)
	start := time.Now()
	for roll := range rolls {
		for i := range m.Apps {
			if !m.Sidecars[i].Term(15 * time.Second) {
				t.Errorf("roll %d: sidecar of %s did not drain and exit within 15s of SIGTERM", roll, m.ID(i))
			} else if code := m.Sidecars[i].ExitCode(); code != 0 {
				t.Errorf("roll %d: sidecar of %s exited with %d after SIGTERM, want 0", roll, m.ID(i), code)
			}
			if !m.Apps[i].Term(15 * time.Second) {
				t.Errorf("roll %d: app %s did not exit within 15s of SIGTERM", roll, m.ID(i))
			}
			m.RestartInstance(t, i)
			m.WaitRoutable(t, m.Client, "web", m.All()...)
			waitRequests(t, load, 100)
		}
	}
	r := load.Stop()
	t.Logf("rolling restart x%d of 3 instances in %s: %s", rolls, time.Since(start).Round(time.Millisecond), r)
	if r.Non2xx != 0 || r.Errors != 0 {
		t.Errorf("non-2xx = %d, transport errors = %d; want 0 and 0", r.Non2xx, r.Errors)
	}
}
