package harness

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ControlPlane is a running `shoal controlplane` with embedded etcd.
type ControlPlane struct {
	*Proc
	Etcd, XDS, API, Admin, Gossip string
	DataDir                       string
}

// StartControlPlane starts a control plane on free ports and waits until
// its admin /ready answers 200 (etcd served and read). A free port can be
// taken by another process between the pick and the bind; then it starts
// again on other ports (up to three times).
func StartControlPlane(t testing.TB, extra ...string) *ControlPlane {
	t.Helper()
	for attempt := 1; ; attempt++ {
		cp := &ControlPlane{
			Etcd: FreeAddr(t), XDS: FreeAddr(t), API: FreeAddr(t), Admin: FreeAddr(t), Gossip: FreeAddr(t),
			DataDir: t.TempDir(),
		}
		args := append([]string{"controlplane",
			"--data-dir", cp.DataDir,
			"--etcd-listen", cp.Etcd, "--etcd-peer-listen", FreeAddr(t),
			"--xds-listen", cp.XDS, "--api-listen", cp.API, "--admin-listen", cp.Admin,
			"--gossip-listen", cp.Gossip,
		}, extra...)
		cp.Proc = Start(t, Binary(t), nil, args...)
		if attempt < 3 && cp.waitReadyOrBindError(t) {
			t.Logf("control plane lost a port to another process; starting again on other ports")
			continue
		}
		cp.WaitReady(t)
		return cp
	}
}

// waitReadyOrBindError waits until the control plane is ready or exits,
// and reports whether it exited because an address was in use.
func (cp *ControlPlane) waitReadyOrBindError(t testing.TB) bool {
	t.Helper()
	bindErr := false
	Eventually(t, DefaultTimeout, "control plane ready", func() bool {
		if cp.Exited() {
			bindErr = strings.Contains(cp.Output(), "address already in use")
			return true
		}
		return httpOK("http://" + cp.Admin + "/ready")
	})
	return bindErr
}

// WaitReady waits until the admin /ready endpoint answers 200.
func (cp *ControlPlane) WaitReady(t testing.TB) {
	t.Helper()
	Eventually(t, DefaultTimeout, "control plane ready", func() bool {
		if cp.Exited() {
			t.Fatalf("control plane exited:\n%s", cp.Output())
		}
		return httpOK("http://" + cp.Admin + "/ready")
	})
}

// EtcdURL is the etcd client URL.
func (cp *ControlPlane) EtcdURL() string { return "http://" + cp.Etcd }

func httpOK(url string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Shoal runs a shoal CLI command to completion and returns its stdout,
// stderr and exit code.
func Shoal(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	var o, e lockedBuffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return o.String(), e.String(), code
}

// NodeApp is a running examples/node-service instance.
type NodeApp struct {
	*Proc
	Service, ID string
	Port        int
}

// NodeAppOptions configure StartNodeApp.
type NodeAppOptions struct {
	Service, ID string
	// Etcd is the etcd client URL the app registers with; empty means the
	// app does not register itself (a sidecar does).
	Etcd string
	// TTL of the registration lease in seconds; zero means the default.
	TTL int
	// Env adds environment variables (e.g. DELAY_MS=50).
	Env []string
}

// StartNodeApp starts the example Node.js service on a free port and
// waits until it answers /healthz (200 or 503: it listens).
func StartNodeApp(t testing.TB, o NodeAppOptions) *NodeApp {
	t.Helper()
	port := FreePort(t)
	env := append([]string{
		"SERVICE=" + o.Service, "INSTANCE_ID=" + o.ID, "PORT=" + strconv.Itoa(port),
	}, o.Env...)
	if o.Etcd != "" {
		env = append(env, "SHOAL_ETCD="+o.Etcd)
	} else {
		env = append(env, "SHOAL_REGISTER=0")
	}
	if o.TTL > 0 {
		env = append(env, fmt.Sprintf("SHOAL_TTL=%d", o.TTL))
	}
	script := filepath.Join(RepoRoot(t), "examples", "node-service", "server.js")
	app := &NodeApp{Proc: Start(t, "node", env, script), Service: o.Service, ID: o.ID, Port: port}
	Eventually(t, DefaultTimeout, "node app "+o.ID+" listening", func() bool {
		if app.Exited() {
			t.Fatalf("node app %s exited:\n%s", o.ID, app.Output())
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return app
}
