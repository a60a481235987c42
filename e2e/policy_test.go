package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

const billingID = "spiffe://shoal.local/ns/default/svc/billing"

// ordersPolicy lets only web call orders.
const ordersPolicy = `name: orders-callers
service: orders
rules:
  - callers: ["` + webID + `"]
`

// Issue 13, item 4: an authorization policy on orders allows web's SPIFFE
// ID only. In the same run web's request reaches orders, a third
// identified service (billing) gets 403 over HTTP/1.1 and HTTP/2 and
// PERMISSION_DENIED over gRPC, and deleting the policy lets billing in.
func TestAuthorizationPolicy(t *testing.T) {
	t.Parallel()
	p := startMTLSPair(t, "--svid-ttl", "2h")
	billing := harness.StartSidecar(t, harness.SidecarOptions{
		CP: p.cp, Service: "billing", InstanceID: "billing-1", AppPort: harness.FreePort(t), NoRegister: true,
		Upstreams: []string{"orders"},
		Extra:     []string{"--join-token-file", createToken(t, p.cp, p.tokDir, "billing")},
	})
	billingURL := billing.UpstreamURL("orders") + "/"
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	harness.Eventually(t, harness.DefaultTimeout, "billing reaches orders before any policy (default allow)", func() bool {
		code, _ := get(billingURL)
		return code == 200
	})

	t.Run("an invalid policy is refused naming the field, and nothing is written", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "bad.yaml")
		os.WriteFile(f, []byte("name: bad\nservice: orders\nrules:\n  - callers: [\"spiffe://shoal.local/ns/default/svc/web\", \"web\"]\n"), 0o644)
		_, errOut, code := harness.Shoal(t, "policies", "apply", "--api", p.cp.API, "-f", f)
		if code == 0 || !strings.Contains(errOut, "rules[0].callers[1]") {
			t.Fatalf("shoal policies apply of an invalid policy: exit %d: %s", code, errOut)
		}
		out, _, _ := harness.Shoal(t, "policies", "list", "--api", p.cp.API)
		if strings.Contains(out, "bad") {
			t.Fatalf("the invalid policy was stored:\n%s", out)
		}
	})

	f := filepath.Join(t.TempDir(), "orders.yaml")
	if err := os.WriteFile(f, []byte(ordersPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := harness.Shoal(t, "policies", "apply", "--api", p.cp.API, "-f", f); code != 0 || !strings.Contains(out, "policy/orders-callers created") {
		t.Fatalf("shoal policies apply: exit %d: %s%s", code, out, errOut)
	}
	out, errOut, code := harness.Shoal(t, "policies", "get", "orders-callers", "--api", p.cp.API, "-o", "yaml")
	if code != 0 || !strings.Contains(out, webID) || !strings.Contains(out, "service: orders") {
		t.Fatalf("shoal policies get: exit %d: %s%s", code, out, errOut)
	}

	var body string
	harness.Eventually(t, harness.DefaultTimeout, "billing is denied by the policy", func() bool {
		var code int
		code, body = get(billingURL)
		return code == 403
	})
	if !strings.Contains(body, billingID) || !strings.Contains(body, "orders") {
		t.Errorf("403 body %q does not say who was denied what", body)
	}
	if code, body := get(p.webURL + "/"); code != 200 {
		t.Fatalf("web (allowed by the policy) got %d %q", code, body)
	}

	// billing's own SVID, to call orders' inbound listener directly over
	// HTTP/2 and gRPC.
	dir := t.TempDir()
	tok := createToken(t, p.cp, dir, "billing")
	if _, errOut, code := harness.Shoal(t, "identity", "fetch", "--xds", p.cp.XDS, "--join-token-file", tok, "--out", dir, "--once"); code != 0 {
		t.Fatalf("shoal identity fetch: exit %d: %s", code, errOut)
	}
	tlsConf := svidClientConfig(t, dir)

	t.Run("HTTP/2 from a denied caller gets 403", func(t *testing.T) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{TLSClientConfig: tlsConf}}
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://" + p.ordersListen + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || resp.ProtoMajor != 2 || !strings.Contains(string(b), billingID) {
			t.Fatalf("got %s %d %q, want HTTP/2 403 naming the caller", resp.Proto, resp.StatusCode, b)
		}
	})

	t.Run("gRPC from a denied caller gets PERMISSION_DENIED", func(t *testing.T) {
		conn, err := grpc.NewClient(p.ordersListen, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), billingID) {
			t.Fatalf("Check = %v, want PermissionDenied naming the caller", err)
		}
	})

	if out, errOut, code := harness.Shoal(t, "policies", "delete", "orders-callers", "--api", p.cp.API); code != 0 {
		t.Fatalf("shoal policies delete: exit %d: %s%s", code, out, errOut)
	}
	harness.Eventually(t, harness.DefaultTimeout, "billing reaches orders again once the policy is deleted", func() bool {
		code, _ := get(billingURL)
		return code == 200
	})
}

// svidClientConfig is a TLS client config presenting the SVID in dir
// (cert.pem, key.pem from shoal identity fetch) and trusting its ca.pem.
// The server's SPIFFE ID is not checked: the test is about the server's
// decision, not the client's.
func svidClientConfig(t *testing.T, dir string) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, InsecureSkipVerify: true, //nolint:gosec // see above
		MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}}
}
