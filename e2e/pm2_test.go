package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// Issue 18, item 3: PM2 workers as mesh instances. `pm2 start
// examples/pm2/ecosystem.config.js` (fork mode, wait_ready) brings up N
// workers that register themselves on free ports as instances
// app-<host>-<pm_id>; a sidecar in front routes over them by least request.
// `pm2 reload` under GET and POST load through the sidecar fails no request,
// and `pm2 scale app +2` adds workers that take traffic at once.
func TestPM2WorkersAsInstances(t *testing.T) {
	t.Parallel()
	const workers = 2 // the machine has 2 cores: `instances: 'max'` would be 2 as well
	cp := harness.StartControlPlane(t)
	sc := harness.StartSidecar(t, harness.SidecarOptions{
		CP: cp, Service: "lb", InstanceID: "lb-1", AppPort: harness.FreePort(t), NoRegister: true,
		Upstreams: []string{"app"},
	})
	applyRoute(t, cp, filepath.Join(harness.RepoRoot(t), "examples", "pm2", "least-request.yaml"))
	harness.Eventually(t, harness.DefaultTimeout, "sidecar routes app by least request", func() bool {
		return sc.RoutesMention("app/least_request")
	})

	pm2 := harness.StartPM2(t, "SHOAL_ETCD="+cp.EtcdURL(), "SHOAL_DRAIN_GATE=http://"+sc.Admin,
		fmt.Sprintf("INSTANCES=%d", workers))
	start := time.Now()
	pm2.Run("start", "examples/pm2/ecosystem.config.js")
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	ids := func(pmIDs ...int) []string {
		var out []string
		for _, id := range pmIDs {
			out = append(out, fmt.Sprintf("app-%s-%d", host, id))
		}
		return out
	}
	// wait_ready: `pm2 start` returns once every worker said 'ready', which
	// the package sends only after registering, so the instances are in
	// etcd already.
	first := instanceIDs(t, cp)
	if want := ids(0, 1); !slices.Equal(first.ids, want) {
		t.Fatalf("after pm2 start: instances %v, want %v (one per worker, named by pm_id)", first.ids, want)
	}
	harness.Eventually(t, harness.DefaultTimeout, "sidecar routes to both workers", func() bool {
		return len(sc.RoutableEndpoints("app/least_request")) == workers
	})
	t.Logf("pm2 start: %d workers registered and routable after %s", workers, time.Since(start).Round(time.Millisecond))

	url := sc.UpstreamURL("app")
	get := harness.StartLoad(t, harness.LoadOptions{URL: url, Concurrency: 2, Pace: time.Millisecond, Duration: time.Minute})
	post := harness.StartLoad(t, harness.LoadOptions{URL: url, Method: http.MethodPost, Concurrency: 2, Pace: time.Millisecond, Duration: time.Minute})
	waitRequests(t, get, 200)
	waitRequests(t, post, 200)

	reloadStart := time.Now()
	pm2.Run("reload", "app")
	reloadTook := time.Since(reloadStart)
	waitRequests(t, get, 200)
	waitRequests(t, post, 200)
	after := instanceIDs(t, cp)
	if !slices.Equal(after.ids, first.ids) {
		t.Errorf("after pm2 reload: instances %v, want the same ids %v", after.ids, first.ids)
	}
	if slices.Equal(after.endpoints, first.endpoints) {
		t.Errorf("after pm2 reload: endpoints %v unchanged: the workers were not replaced", after.endpoints)
	}
	for _, l := range []struct {
		name string
		load *harness.Load
	}{{"GET", get}, {"POST", post}} {
		r := l.load.Snapshot()
		t.Logf("pm2 reload (%s) under %s load: %s", reloadTook.Round(time.Millisecond), l.name, r)
		if r.Failures() != 0 {
			t.Errorf("%s during pm2 reload: %d non-2xx, %d transport errors; want 0 and 0", l.name, r.Non2xx, r.Errors)
		}
	}

	// Each stopped worker waited at the sidecar's drain gate until the
	// sidecar's table no longer had it, instead of sleeping.
	gates, sum := sidecarMetric(t, sc, "shoal_sidecar_drain_wait_seconds_count"), sidecarMetric(t, sc, "shoal_sidecar_drain_wait_seconds_sum")
	if gates < workers {
		t.Errorf("drain gate waits = %v, want >= %d (one per reloaded worker)", gates, workers)
	} else {
		t.Logf("drain gate: %v waits, %.1f ms on average", gates, 1000*sum/gates)
	}
	if n := sidecarMetric(t, sc, "shoal_sidecar_drain_wait_timeouts_total"); n != 0 {
		t.Errorf("drain gate timeouts = %v, want 0", n)
	}

	scaleStart := time.Now()
	pm2.Run("scale", "app", "+2")
	// wait_ready: `pm2 scale` returns once both new workers are registered.
	registered := time.Now()
	got := map[string]time.Duration{}
	harness.Eventually(t, harness.DefaultTimeout, "the two new workers answer requests", func() bool {
		seen := get.Snapshot().LastSeen
		for _, id := range ids(2, 3) {
			if at, ok := seen[id]; ok && at.After(scaleStart) {
				if _, done := got[id]; !done {
					got[id] = time.Since(registered)
				}
			}
		}
		return len(got) == 2
	})
	t.Logf("pm2 scale app +2: took %s until both new workers were ready (registered); they answered requests %v after that (loaded machine: noisy)",
		registered.Sub(scaleStart).Round(time.Millisecond), got)
	if ids := instanceIDs(t, cp).ids; !slices.Equal(ids, ids4(host)) {
		t.Errorf("after pm2 scale: instances %v, want %v", ids, ids4(host))
	}
	for _, l := range []*harness.Load{get, post} {
		if r := l.Stop(); r.Failures() != 0 {
			t.Errorf("failures over the whole run: %s", r)
		}
	}
}

func ids4(host string) []string {
	var out []string
	for i := range 4 {
		out = append(out, fmt.Sprintf("app-%s-%d", host, i))
	}
	return out
}

type registered struct{ ids, endpoints []string }

// instanceIDs reads service app's instances from the control plane.
func instanceIDs(t *testing.T, cp *harness.ControlPlane) registered {
	t.Helper()
	list, err := cp.Instances("app")
	if err != nil {
		t.Fatal(err)
	}
	var r registered
	for _, s := range list {
		id, ep, _ := strings.Cut(s, "@")
		r.ids = append(r.ids, id)
		r.endpoints = append(r.endpoints, ep)
	}
	return r
}

// sidecarMetric reads a metric (summed over its labels) from the sidecar's /metrics.
func sidecarMetric(t *testing.T, sc *harness.Sidecar, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + sc.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return metricValue(body, name)
}

// applyRoute applies a route file with `shoal routes apply`.
func applyRoute(t *testing.T, cp *harness.ControlPlane, file string) {
	t.Helper()
	if out, errOut, code := harness.Shoal(t, "routes", "apply", "-f", file, "--api", cp.API); code != 0 {
		t.Fatalf("shoal routes apply: exit %d: %s%s", code, out, errOut)
	}
}
