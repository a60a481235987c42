package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// TestAPIAuth runs a control plane with the management API's
// authentication forced on loopback (--api-auth=required) and drives it
// with the CLI as an operator would: no credentials get Unauthenticated, a
// viewer token lists but cannot apply, an admin token applies; the etcd
// revision is unchanged after every refused write.
func TestAPIAuth(t *testing.T) {
	t.Parallel()
	cp := harness.StartControlPlane(t, "--api-auth=required")
	cli := cp.EtcdClient(t)
	rev := func() int64 {
		t.Helper()
		r, err := cli.Get(t.Context(), "/shoal/v1/routes/")
		if err != nil {
			t.Fatal(err)
		}
		return r.Header.Revision
	}
	dir := t.TempDir()
	route := filepath.Join(dir, "shop.yaml")
	if err := os.WriteFile(route, []byte("name: shop\nhosts: [shop]\nrules:\n  - destinations: [{service: web}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	shoal := func(args ...string) (string, int) {
		t.Helper()
		out, errOut, code := harness.Shoal(t, append(args, "--api", cp.API)...)
		return out + errOut, code
	}
	refusedApply := func(why, want string, creds ...string) {
		t.Helper()
		before := rev()
		out, code := shoal(append([]string{"routes", "apply", "-f", route}, creds...)...)
		if code == 0 || !strings.Contains(out, want) {
			t.Fatalf("%s: routes apply: exit %d: %s; want a refusal saying %q", why, code, out, want)
		}
		if after := rev(); after != before {
			t.Fatalf("%s: etcd revision %d -> %d after a refused apply", why, before, after)
		}
	}
	bundle := filepath.Join(cp.DataDir, "ca", "root.crt")

	// No credentials, over TLS: Unauthenticated, with what to give.
	if out, code := shoal("routes", "list", "--ca-bundle", bundle); code == 0 || !strings.Contains(out, "needs credentials") {
		t.Fatalf("routes list without credentials: exit %d: %s; want it refused for credentials", code, out)
	}
	refusedApply("no credentials", "needs credentials", "--ca-bundle", bundle)

	// The admin certificate, written offline from the CA directory.
	admin := filepath.Join(dir, "admin")
	if out, errOut, code := harness.Shoal(t, "ca", "issue-admin", "--ca-dir", filepath.Join(cp.DataDir, "ca"), "--out", admin); code != 0 {
		t.Fatalf("shoal ca issue-admin: exit %d: %s%s", code, out, errOut)
	}
	adminCreds := []string{"--cert", filepath.Join(admin, "cert.pem"), "--key", filepath.Join(admin, "key.pem"), "--ca-bundle", filepath.Join(admin, "ca.pem")}
	token := func(role string) string {
		t.Helper()
		out, errOut, code := harness.Shoal(t, append([]string{"tokens", "create", "--" + role, "--api", cp.API}, adminCreds...)...)
		if code != 0 {
			t.Fatalf("tokens create --%s: exit %d: %s%s", role, code, out, errOut)
		}
		return strings.TrimSpace(out)
	}
	viewer, adminTok := token("viewer"), token("admin")

	// A viewer lists (the token alone verifies the control plane) but
	// cannot apply, nor make itself an admin token.
	if out, code := shoal("routes", "list", "--token", viewer); code != 0 {
		t.Fatalf("viewer routes list: exit %d: %s", code, out)
	}
	refusedApply("viewer", "permission denied", "--token", viewer)
	if out, code := shoal("tokens", "create", "--admin", "--token", viewer); code == 0 || !strings.Contains(out, "permission denied") {
		t.Fatalf("viewer tokens create --admin: exit %d: %s; want permission denied", code, out)
	}

	// An admin token applies.
	if out, code := shoal("routes", "apply", "-f", route, "--token", adminTok); code != 0 {
		t.Fatalf("admin routes apply: exit %d: %s", code, out)
	}
	if out, code := shoal("routes", "list", "--token", viewer); code != 0 || !strings.Contains(out, "shop") {
		t.Fatalf("viewer routes list after the apply: exit %d: %s; want shop", code, out)
	}
}
