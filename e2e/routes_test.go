package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-mesh/shoal/controlplane/routes"
	"github.com/shoal-mesh/shoal/e2e/harness"
)

// routesApply runs `shoal routes apply -f file...` against cp.
func routesApply(t *testing.T, cp *harness.ControlPlane, files ...string) {
	t.Helper()
	args := []string{"routes", "apply", "--api", cp.API}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	if out, errOut, code := harness.Shoal(t, args...); code != 0 {
		t.Fatalf("shoal routes apply: exit %d\n%s%s", code, out, errOut)
	}
}

// statusRoute returns the ROUTE table row of `shoal status` for name, with
// its columns split on runs of spaces ("" if absent).
func statusRoute(t *testing.T, cp *harness.ControlPlane, name string) (row string, out string) {
	t.Helper()
	out, errOut, code := harness.Shoal(t, "status", "--api", cp.API)
	if code != 0 {
		t.Fatalf("shoal status: exit %d\n%s%s", code, out, errOut)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return line, out
		}
	}
	return "", out
}

func etcdClient(t *testing.T, cp *harness.ControlPlane) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{cp.EtcdURL()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestRoutesSharingAHostAreBothServed applies the two examples that serve
// api.example.com on different paths: both are served.
func TestRoutesSharingAHostAreBothServed(t *testing.T) {
	t.Parallel()
	cp := harness.StartControlPlane(t)
	dir := filepath.Join(harness.RepoRoot(t), "examples", "routes")
	routesApply(t, cp, filepath.Join(dir, "header-hash.yaml"), filepath.Join(dir, "retries-timeouts.yaml"))
	served := regexp.MustCompile(`\s+\d+\s+yes\s`)
	harness.Eventually(t, harness.DefaultTimeout, "users-by-id and orders-api served", func() bool {
		a, _ := statusRoute(t, cp, "users-by-id")
		b, _ := statusRoute(t, cp, "orders-api")
		return served.MatchString(a) && served.MatchString(b)
	})
}

// TestInvalidRouteWrittenToEtcdIsRejected is issue 6: a route written
// straight into etcd (around the API) that fails validation is not pushed,
// the last good version stays served, `shoal status` shows the error, and
// a valid write clears it.
func TestInvalidRouteWrittenToEtcdIsRejected(t *testing.T) {
	t.Parallel()
	cp := harness.StartControlPlane(t)
	cli := etcdClient(t, cp)
	good := filepath.Join(t.TempDir(), "web.yaml")
	writeFile(t, good, "name: web\nhosts: [web]\nrules:\n  - destinations:\n      - service: web\n    strategy: round_robin\n")
	routesApply(t, cp, good)
	var goodVersion string
	harness.Eventually(t, harness.DefaultTimeout, "web served", func() bool {
		row, _ := statusRoute(t, cp, "web")
		if f := strings.Fields(row); len(f) >= 3 && f[2] == "yes" {
			goodVersion = f[1]
			return true
		}
		return false
	})

	ctx, cancel := context.WithTimeout(t.Context(), harness.DefaultTimeout)
	defer cancel()
	bad := `{"name":"web","hosts":["web"],"rules":[{"destinations":[{"service":"web","weight":-3}]}]}`
	put, err := cli.Put(ctx, routes.Key("web"), bad)
	if err != nil {
		t.Fatal(err)
	}
	want := "rejected version " + itoa(put.Header.Revision) + ": rules[0].destinations[0].weight: -3 is outside 1-10000; serving version " + goodVersion
	var row, out string
	harness.Eventually(t, harness.DefaultTimeout, "the rejection in shoal status", func() bool {
		row, out = statusRoute(t, cp, "web")
		return strings.Contains(row, "rejected version")
	})
	if !strings.Contains(row, want) || !strings.Contains(row, " NO ") {
		t.Errorf("shoal status row for web = %q, want NO and %q\n%s", row, want, out)
	}

	// Fix it with a valid write: served again, the error gone.
	routesApply(t, cp, good)
	harness.Eventually(t, harness.DefaultTimeout, "web served again without error", func() bool {
		row, _ := statusRoute(t, cp, "web")
		f := strings.Fields(row)
		return len(f) >= 4 && f[1] != goodVersion && f[2] == "yes" && f[3] == "-"
	})
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
