package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/e2e/harness"
	"github.com/shoal-mesh/shoal/registry"
)

// instances runs `shoal instances SERVICE -o json` against cp's
// management API; a service with no instances is an empty list (the
// command exits 1 saying so).
func instances(t *testing.T, cp *harness.ControlPlane, service string) []registry.Instance {
	t.Helper()
	out, errOut, code := harness.Shoal(t, "instances", service, "--api", cp.API, "-o", "json")
	if code == 1 && strings.Contains(errOut, "has no registered instances") {
		return nil
	}
	if code != 0 {
		t.Fatalf("shoal instances: exit %d: %s", code, errOut)
	}
	var resp struct {
		Instances []registry.Instance `json:"instances"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("shoal instances -o json: %v\n%s", err, out)
	}
	return resp.Instances
}

func hasInstance(ins []registry.Instance, id string) bool {
	for _, in := range ins {
		if in.ID == id {
			return true
		}
	}
	return false
}

func TestNodeInstanceRegistersAndDeregisters(t *testing.T) {
	t.Parallel()
	cp := harness.StartControlPlane(t)
	const ttl = 3
	term := harness.StartNodeApp(t, harness.NodeAppOptions{Service: "web", ID: "web-term", Etcd: cp.EtcdURL(), TTL: ttl})
	killed := harness.StartNodeApp(t, harness.NodeAppOptions{Service: "web", ID: "web-kill", Etcd: cp.EtcdURL(), TTL: ttl})

	harness.Eventually(t, harness.DefaultTimeout, "both instances in `shoal instances web`", func() bool {
		ins := instances(t, cp, "web")
		return hasInstance(ins, "web-term") && hasInstance(ins, "web-kill")
	})
	out, _, _ := harness.Shoal(t, "services", "--api", cp.API)
	if !strings.Contains(out, "web") || !strings.Contains(out, "2") {
		t.Errorf("shoal services does not list web with 2 instances:\n%s", out)
	}

	// SIGTERM: deregistered before the process exits, so it is gone at once.
	if !term.Term(10 * time.Second) {
		t.Fatalf("node app did not exit on SIGTERM:\n%s", term.Output())
	}
	if code := term.ExitCode(); code != 0 {
		t.Errorf("node app exit code after SIGTERM = %d, want 0", code)
	}
	if hasInstance(instances(t, cp, "web"), "web-term") {
		t.Errorf("web-term still registered right after a graceful exit")
	}

	// kill -9: nothing deregisters it; the lease lapses within TTL + 1 s.
	killed.Kill()
	took := harness.Eventually(t, (ttl+1)*time.Second, "killed instance gone within TTL + 1s", func() bool {
		return !hasInstance(instances(t, cp, "web"), "web-kill")
	})
	t.Logf("kill -9: instance gone after %s (TTL %ds)", took.Round(10*time.Millisecond), ttl)
}

func TestControlPlaneShutsDownCleanlyOnSIGTERM(t *testing.T) {
	t.Parallel()
	cp := harness.StartControlPlane(t)
	if !cp.Term(15 * time.Second) {
		t.Fatalf("control plane did not exit within 15s of SIGTERM:\n%s", cp.Output())
	}
	if code := cp.ExitCode(); code != 0 {
		t.Errorf("exit code = %d, want 0\n%s", code, cp.Output())
	}
	// Restarting on the same data dir works (etcd data intact, ports free).
	cp.Restart()
	cp.WaitReady(t)
}
