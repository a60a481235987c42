//go:build linux

package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// TestAuthOffLoopback runs the control plane in a network namespace with
// its management API on a non-loopback address (10.213.0.1) and calls it
// from a second namespace, as another machine on the pod network would:
// plain unauthenticated gossip beyond loopback is refused at start, the
// API authenticates with no flag asking for it (--api-auth auto), a viewer
// reads and cannot write, and the admin port beyond loopback serves
// /metrics to anyone and its gossip keys to nobody without the admin
// identity.
func TestAuthOffLoopback(t *testing.T) {
	if why := harness.NetnsUnavailable(); why != "" {
		harness.Unavailable(t, "network namespace test of authentication beyond loopback: "+why)
	}
	t.Parallel()
	pair := harness.StartNetPair(t)
	data := t.TempDir()
	api, xds := pair.AddrA+":18001", pair.AddrA+":18000"
	base := []string{"controlplane", "--data-dir", data, "--api-listen", api, "--xds-listen", xds}

	// The one rule: gossip in plain text without authentication beyond
	// loopback stops the start, naming the flag and --insecure.
	refused := pair.A.Start(t, append(base, "--gossip-listen", pair.AddrA+":7946", "--gossip-auth", "off")...)
	if !refused.Wait(harness.DefaultTimeout) {
		t.Fatal("the control plane kept running with plain gossip beyond loopback")
	}
	if out := refused.Output(); refused.ExitCode() == 0 || !strings.Contains(out, "--gossip-listen") || !strings.Contains(out, "--insecure") {
		t.Fatalf("refused start: exit %d:\n%s\nwant a line naming --gossip-listen and --insecure", refused.ExitCode(), out)
	}

	cp := pair.A.Start(t, append(base, "--admin-listen", pair.AddrA+":18002")...)
	// From B: up and speaking TLS once a plain call is told so.
	harness.Eventually(t, harness.DefaultTimeout, "the API answers from the other namespace", func() bool {
		if cp.Exited() {
			t.Fatalf("control plane exited:\n%s", cp.Output())
		}
		_, errOut, _ := pair.B.Shoal(t, "routes", "list", "--api", api, "--timeout", "2s")
		return strings.Contains(errOut, "disagree on TLS")
	})
	bundle := filepath.Join(data, "ca", "root.crt")
	if _, errOut, code := pair.B.Shoal(t, "routes", "list", "--api", api, "--ca-bundle", bundle); code == 0 || !strings.Contains(errOut, "needs credentials") {
		t.Fatalf("routes list without credentials: exit %d: %s", code, errOut)
	}
	admin := t.TempDir()
	if _, errOut, code := harness.Shoal(t, "ca", "issue-admin", "--ca-dir", filepath.Join(data, "ca"), "--out", admin); code != 0 {
		t.Fatalf("ca issue-admin: exit %d: %s", code, errOut)
	}
	viewer, errOut, code := pair.B.Shoal(t, "tokens", "create", "--viewer", "--api", api,
		"--cert", filepath.Join(admin, "cert.pem"), "--key", filepath.Join(admin, "key.pem"), "--ca-bundle", filepath.Join(admin, "ca.pem"))
	if code != 0 {
		t.Fatalf("tokens create --viewer with the admin certificate: exit %d: %s", code, errOut)
	}
	viewer = strings.TrimSpace(viewer)
	if out, errOut, code := pair.B.Shoal(t, "routes", "list", "--api", api, "--token", viewer); code != 0 {
		t.Fatalf("viewer routes list: exit %d: %s%s", code, out, errOut)
	}
	route := filepath.Join(t.TempDir(), "shop.yaml")
	if err := os.WriteFile(route, []byte("name: shop\nhosts: [shop]\nrules:\n  - destinations: [{service: web}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := pair.B.Shoal(t, "routes", "apply", "-f", route, "--api", api, "--token", viewer); code == 0 || !strings.Contains(errOut, "permission denied") {
		t.Fatalf("viewer routes apply: exit %d: %s; want permission denied", code, errOut)
	}

	// A sidecar without an identity cannot subscribe to xDS beyond
	// loopback: its plain-text streams are refused and counted.
	pair.B.Start(t, "sidecar", "--service", "web", "--app-port", "3000", "--xds", xds, "--no-register", "--outbound", "127.0.0.1:15001", "--admin-listen", "127.0.0.1:15000")
	metrics := pair.A.HTTPClient()
	harness.Eventually(t, harness.DefaultTimeout, "a refused plain-text xDS stream", func() bool {
		resp, err := metrics.Get("http://" + pair.AddrA + ":18002/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return regexp.MustCompile(`(?m)^shoal_xds_rejected_streams_total\{reason="plaintext"\} [1-9]`).Match(b)
	})
	// The admin port from the other namespace: the gossip keyring needs
	// the admin identity.
	fromB := pair.B.HTTPClient()
	resp, err := fromB.Get("http://" + pair.AddrA + ":18002/gossip/keys")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /gossip/keys from another namespace: %s, want 401", resp.Status)
	}
}
