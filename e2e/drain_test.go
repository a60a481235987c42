package e2e

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// Issue 18, item 1: a convergence-gated drain. Each instance's sidecar, on
// SIGTERM, deregisters and then waits until every xDS client that was sent
// the service's endpoints has ACKed endpoints without the instance
// (DrainService.WaitRemoved on the control plane) instead of sleeping; only
// then does it drain. A rolling restart of three instances under GET and
// POST load fails no request; with a proxy gone (kill -9, so it keeps its
// last config), the drain waits no longer than the bound (--drain-timeout)
// and says who had not ACKed.
func TestRollingRestartGatedDrain(t *testing.T) {
	t.Parallel()
	const bound = 3 * time.Second
	m := harness.StartMesh(t, 3, harness.MeshOptions{SidecarExtra: []string{"--drain-timeout", bound.String()}})
	get := harness.StartLoad(t, harness.LoadOptions{URL: m.URL(), Concurrency: 2, Pace: time.Millisecond, Duration: 90 * time.Second})
	post := harness.StartLoad(t, harness.LoadOptions{URL: m.URL(), Method: http.MethodPost, Concurrency: 2, Pace: time.Millisecond, Duration: 90 * time.Second})
	waitRequests(t, get, 200)
	waitRequests(t, post, 200)
	for i := range m.Apps {
		termed := time.Now()
		if !m.Sidecars[i].Term(15 * time.Second) {
			t.Fatalf("sidecar of %s did not drain and exit within 15s of SIGTERM", m.ID(i))
		}
		took := time.Since(termed)
		waited, ok := gateLog(m.Sidecars[i].Output(), "every proxy ACKed the removal")
		if !ok {
			t.Errorf("sidecar of %s: no 'every proxy ACKed the removal' in its log:\n%s", m.ID(i), m.Sidecars[i].Output())
		}
		t.Logf("%s: the drain gate waited %s for the ACKs; SIGTERM to exit took %s", m.ID(i), waited, took.Round(time.Millisecond))
		if !m.Apps[i].Term(15 * time.Second) {
			t.Errorf("app %s did not exit within 15s of SIGTERM", m.ID(i))
		}
		m.RestartInstance(t, i)
		m.WaitRoutable(t, m.Client, "web", m.All()...)
		waitRequests(t, get, 100)
		waitRequests(t, post, 100)
	}
	for name, l := range map[string]*harness.Load{"GET": get, "POST": post} {
		r := l.Stop()
		t.Logf("rolling restart under %s load: %s", name, r)
		if r.Non2xx != 0 || r.Errors != 0 {
			t.Errorf("%s: non-2xx = %d, transport errors = %d; want 0 and 0", name, r.Non2xx, r.Errors)
		}
	}
	cpm := controlPlaneMetrics(t, m.CP)
	if n := metricValue(cpm, "shoal_xds_drain_wait_seconds_count"); n < 3 {
		t.Errorf("control plane drain waits = %v, want >= 3", n)
	}
	if n := metricValue(cpm, "shoal_xds_drain_unacked_proxies_total"); n != 0 {
		t.Errorf("proxies unACKed at the bound during the rolling restart = %v, want 0", n)
	}

	// A proxy that is gone keeps routing on its last config: it holds the
	// drain until the bound, and no longer.
	gone := harness.StartSidecar(t, harness.SidecarOptions{
		CP: m.CP, Service: "client", InstanceID: "client-gone", AppPort: harness.FreePort(t), NoRegister: true,
		Upstreams: []string{"web"},
	})
	m.WaitRoutable(t, gone, "web", m.All()...)
	gone.Kill()
	termed := time.Now()
	if !m.Sidecars[0].Term(15 * time.Second) {
		t.Fatalf("sidecar of %s did not exit within 15s of SIGTERM with a proxy gone", m.ID(0))
	}
	took := time.Since(termed)
	out := m.Sidecars[0].Output()
	waited, ok := gateLog(out[strings.LastIndex(out, "drain gate"):], "had not ACKed the removal at the bound")
	if !ok {
		t.Fatalf("no 'had not ACKed the removal at the bound' in the log:\n%s", out)
	}
	if !strings.Contains(out[strings.LastIndex(out, "drain gate"):], "client-gone (disconnected)") {
		t.Errorf("the drain gate's log does not name client-gone as pending:\n%s", out)
	}
	t.Logf("with client-gone killed: the gate waited %s (bound %s); SIGTERM to exit took %s", waited, bound, took.Round(time.Millisecond))
	// The bound is a timer on a loaded machine: allow it to fire late, not
	// to be skipped.
	if waited < bound || waited > bound+2*time.Second {
		t.Errorf("the gate waited %s with a proxy gone, want the bound %s (+ scheduling slack)", waited, bound)
	}
	if n := metricValue(controlPlaneMetrics(t, m.CP), "shoal_xds_drain_unacked_proxies_total"); n < 1 {
		t.Errorf("shoal_xds_drain_unacked_proxies_total = %v, want >= 1 after the gone proxy held a drain", n)
	}
}

var waitedRE = regexp.MustCompile(`waited=(\S+)`)

// gateLog finds the last drain-gate log line containing msg in out and
// returns its waited= duration.
func gateLog(out, msg string) (time.Duration, bool) {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if !strings.Contains(lines[i], msg) {
			continue
		}
		mm := waitedRE.FindStringSubmatch(lines[i])
		if mm == nil {
			return 0, false
		}
		d, err := time.ParseDuration(mm[1])
		return d, err == nil
	}
	return 0, false
}

// controlPlaneMetrics reads the control plane's admin /metrics.
func controlPlaneMetrics(t *testing.T, cp *harness.ControlPlane) []byte {
	t.Helper()
	resp, err := http.Get("http://" + cp.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
