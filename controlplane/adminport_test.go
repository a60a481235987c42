package controlplane_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-mesh/shoal/controlplane"
	"github.com/shoal-mesh/shoal/controlplane/identity"
	shoalidentity "github.com/shoal-mesh/shoal/identity"
	"github.com/shoal-mesh/shoal/internal/testutil/hostaddr"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// Issue 14 item 6: the control plane's admin port bound beyond loopback
// starts without --insecure; /metrics and /ready answer anyone in plain
// text (probes, Prometheus); the gossip keyring, the dashboard and the
// rest need the admin SVID or an admin token over TLS on the same port.
func TestAdminPortBeyondLoopback(t *testing.T) {
	ip := hostaddr.IPv4(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	srv, _ := start(t, func(c *controlplane.Config) {
		c.DataDir = dataDir
		c.AdminListen = net.JoinHostPort(ip, "0")
	})
	a := srv.Addrs()
	waitReady(t, a.Admin)
	ca, err := identity.Load(filepath.Join(dataDir, "ca"), spiffeid.RequireTrustDomainFromString(shoalidentity.DefaultTrustDomain))
	if err != nil {
		t.Fatal(err)
	}
	// Tokens from the management API (on loopback, open).
	conn, err := grpc.NewClient(a.API, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	token := func(role string) string {
		resp, err := shoalv1.NewTokenServiceClient(conn).CreateToken(t.Context(), &shoalv1.CreateTokenRequest{Role: role, TtlSeconds: 600})
		if err != nil {
			t.Fatalf("CreateToken(%s): %v", role, err)
		}
		return resp.GetToken()
	}
	adminTok, viewerTok := token("admin"), token("viewer")
	adminDir := t.TempDir()
	if _, err := ca.WriteAdmin(adminDir, time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	adminCert, err := tls.LoadX509KeyPair(filepath.Join(adminDir, "cert.pem"), filepath.Join(adminDir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	webCert := svidCert(t, ca, "web")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root())
	tlsCfg := func(cert *tls.Certificate) *tls.Config {
		// The serving certificate names the control plane's SPIFFE ID;
		// this test checks the admin port's rules, not the server's name.
		c := &tls.Config{RootCAs: roots, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
		if cert != nil {
			c.Certificates = []tls.Certificate{*cert}
		}
		return c
	}
	get := func(url string, cfg *tls.Config, tok string) (int, string) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	plain, secure := "http://"+a.Admin, "https://"+a.Admin
	for _, tc := range []struct {
		name, url string
		tls       *tls.Config
		token     string
		want      int
		wantBody  string
	}{
		{"plain /metrics for Prometheus", plain + "/metrics", nil, "", 200, "shoal_"},
		{"plain /ready for probes", plain + "/ready", nil, "", 200, "ready"},
		{"plain gossip keys", plain + "/gossip/keys", nil, "", 401, "connect with TLS"},
		{"plain dashboard", plain + "/ui/", nil, "", 401, "admin"},
		{"TLS without credentials", secure + "/gossip/keys", tlsCfg(nil), "", 401, "no admin certificate"},
		{"a workload SVID", secure + "/gossip/keys", tlsCfg(&webCert), "", 401, "is not the admin identity"},
		{"a viewer token", secure + "/gossip/keys", tlsCfg(nil), viewerTok, 401, "viewer token may not"},
		{"the admin certificate", secure + "/gossip/keys", tlsCfg(&adminCert), "", 200, "keys"},
		{"an admin token", secure + "/ui/", tlsCfg(nil), adminTok, 200, ""},
		{"TLS /metrics", secure + "/metrics", tlsCfg(nil), "", 200, "shoal_"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(tc.url, tc.tls, tc.token)
			if code != tc.want || !strings.Contains(body, tc.wantBody) {
				t.Errorf("GET %s = %d %q, want %d containing %q", tc.url, code, oneLine(body), tc.want, tc.wantBody)
			}
		})
	}
}

func oneLine(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.Join(strings.Fields(s), " ")
}
