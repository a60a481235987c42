package e2e

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/e2e/harness"
	"github.com/shoal-mesh/shoal/internal/testutil/hostaddr"
)

// Issue 14 item 6, sidecars: an admin listener on 0.0.0.0 serves /metrics
// and /ready to anyone; /config_dump, /clusters, /members and the gossip
// keyring only to the admin SVID over TLS (a sidecar with an identity), or
// to loopback peers (a sidecar without one, and kubectl exec / preStop).
func TestSidecarAdminBeyondLoopback(t *testing.T) {
	ip := hostaddr.IPv4(t)
	cp := harness.StartControlPlane(t)
	dir := t.TempDir()
	withID := harness.StartSidecar(t, harness.SidecarOptions{CP: cp, Service: "orders", InstanceID: "orders-1", AppPort: harness.FreePort(t),
		NoRegister: true, AdminBeyondLoopback: true, Extra: []string{"--join-token-file", createToken(t, cp, dir, "orders")}})
	noID := harness.StartSidecar(t, harness.SidecarOptions{CP: cp, Service: "web", InstanceID: "web-1", AppPort: harness.FreePort(t),
		NoRegister: true, AdminBeyondLoopback: true})
	admin := t.TempDir()
	if _, errOut, code := harness.Shoal(t, "ca", "issue-admin", "--ca-dir", filepath.Join(cp.DataDir, "ca"), "--out", admin); code != 0 {
		t.Fatalf("ca issue-admin: exit %d: %s", code, errOut)
	}
	adminCert, err := tls.LoadX509KeyPair(filepath.Join(admin, "cert.pem"), filepath.Join(admin, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	svidDir := t.TempDir()
	if _, errOut, code := harness.Shoal(t, "identity", "fetch", "--xds", cp.XDS, "--join-token-file", createToken(t, cp, dir, "billing"), "--out", svidDir, "--once"); code != 0 {
		t.Fatalf("identity fetch: exit %d: %s", code, errOut)
	}
	workload, err := tls.LoadX509KeyPair(filepath.Join(svidDir, "cert.pem"), filepath.Join(svidDir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	beyond := func(s *harness.Sidecar) string {
		_, port, _ := net.SplitHostPort(s.Admin)
		return net.JoinHostPort(ip, port)
	}
	get := func(url string, cert *tls.Certificate) (int, string) {
		t.Helper()
		cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13} // the sidecar's SVID names no host
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, url string
		cert      *tls.Certificate
		want      int
		wantBody  string
	}{
		{"/metrics for Prometheus", "http://" + beyond(withID) + "/metrics", nil, 200, "shoal_"},
		{"/ready for probes", "http://" + beyond(withID) + "/ready", nil, 200, "ready"},
		{"plain /config_dump", "http://" + beyond(withID) + "/config_dump", nil, 401, "connect with TLS"},
		{"TLS /clusters without a certificate", "https://" + beyond(withID) + "/clusters", nil, 401, "admin certificate"},
		{"TLS /members with a workload SVID", "https://" + beyond(withID) + "/members", &workload, 401, "is not the admin identity"},
		{"TLS /config_dump with the admin SVID", "https://" + beyond(withID) + "/config_dump", &adminCert, 200, "xds_status"},
		{"TLS /metrics without a certificate", "https://" + beyond(withID) + "/metrics", nil, 200, "shoal_"},
		{"loopback peer /config_dump", "http://" + withID.Admin + "/config_dump", nil, 200, "xds_status"},
		{"no identity: /config_dump", "http://" + beyond(noID) + "/config_dump", nil, 403, "loopback only"},
		{"no identity: /gossip/keys", "http://" + beyond(noID) + "/gossip/keys", nil, 403, "loopback only"},
		{"no identity: /ready", "http://" + beyond(noID) + "/ready", nil, 200, "ready"},
		{"no identity: loopback peer /clusters", "http://" + noID.Admin + "/clusters", nil, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(tc.url, tc.cert)
			if code != tc.want || !strings.Contains(body, tc.wantBody) {
				if len(body) > 300 {
					body = body[:300]
				}
				t.Errorf("GET %s = %d %q, want %d containing %q", tc.url, code, body, tc.want, tc.wantBody)
			}
		})
	}
	t.Run("shoal gossip keys says why it is refused", func(t *testing.T) {
		out, _, code := harness.Shoal(t, "gossip", "keys", "list", "--admin", beyond(noID))
		if code == 0 || !strings.Contains(out, "403") || !strings.Contains(out, "loopback") {
			t.Errorf("gossip keys list beyond loopback: exit %d:\n%s\nwant a 403 saying loopback", code, out)
		}
		if out, errOut, code := harness.Shoal(t, "gossip", "keys", "list", "--admin", noID.Admin); code != 0 {
			t.Errorf("gossip keys list from loopback: exit %d: %s%s", code, out, errOut)
		}
	})
}
