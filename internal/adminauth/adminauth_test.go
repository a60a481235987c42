package adminauth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-mesh/shoal/internal/adminauth"
	"github.com/shoal-mesh/shoal/internal/testutil/hostaddr"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type pki struct {
	pool   *x509.CertPool
	server tls.Certificate
	admin  tls.Certificate
	other  tls.Certificate
}

func newPKI(t *testing.T) pki {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(cn string, usage x509.ExtKeyUsage, serial int64) tls.Certificate {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, k.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	p := pki{pool: x509.NewCertPool(), server: leaf("server", x509.ExtKeyUsageServerAuth, 2),
		admin: leaf("admin", x509.ExtKeyUsageClientAuth, 3), other: leaf("web", x509.ExtKeyUsageClientAuth, 4)}
	p.pool.AddCert(ca)
	return p
}

// authorize accepts the "admin" certificate or the bearer token "good",
// over TLS only: what the control plane does with the admin SVID and the
// API's admin tokens.
func authorize(r *http.Request) error {
	st := adminauth.TLSState(r)
	if st == nil {
		return errors.New("connect with TLS")
	}
	if len(st.VerifiedChains) > 0 && st.VerifiedChains[0][0].Subject.CommonName == "admin" {
		return nil
	}
	if r.Header.Get("Authorization") == "Bearer good" {
		return nil
	}
	return errors.New("no admin certificate or token")
}

func serve(t *testing.T, host string, cfg *tls.Config, auth adminauth.Authorizer) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, p := range []string{"/metrics", "/ready", "/config_dump", "/members"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok "+p) })
	}
	srv := &http.Server{Handler: adminauth.Handler(mux, auth), ConnContext: adminauth.ConnContext, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(adminauth.Listener(l, cfg)) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return l.Addr().String()
}

func get(t *testing.T, url string, cfg *tls.Config, token string) (int, string) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminBeyondLoopback(t *testing.T) {
	ip := hostaddr.IPv4(t)
	p := newPKI(t)
	serverTLS := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{p.server},
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: p.pool}
	addr := serve(t, ip, serverTLS, authorize)
	client := func(cert *tls.Certificate) *tls.Config {
		c := &tls.Config{RootCAs: p.pool, ServerName: "server", InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
		if cert != nil {
			c.Certificates = []tls.Certificate{*cert}
		}
		return c
	}
	tests := []struct {
		name, url string
		tls       *tls.Config
		token     string
		want      int
		wantBody  string
	}{
		{name: "plain /metrics is open for Prometheus", url: "http://" + addr + "/metrics", want: 200},
		{name: "plain /ready is open for probes", url: "http://" + addr + "/ready", want: 200},
		{name: "plain /config_dump needs the admin identity", url: "http://" + addr + "/config_dump", want: 401, wantBody: "connect with TLS"},
		{name: "a token over plain text is not taken", url: "http://" + addr + "/members", token: "good", want: 401},
		{name: "TLS without credentials", url: "https://" + addr + "/config_dump", tls: client(nil), want: 401, wantBody: "no admin certificate"},
		{name: "TLS with another identity", url: "https://" + addr + "/config_dump", tls: client(&p.other), want: 401},
		{name: "TLS with a wrong token", url: "https://" + addr + "/config_dump", tls: client(nil), token: "bad", want: 401},
		{name: "TLS with the admin certificate", url: "https://" + addr + "/config_dump", tls: client(&p.admin), want: 200, wantBody: "ok /config_dump"},
		{name: "TLS with an admin token", url: "https://" + addr + "/members", tls: client(nil), token: "good", want: 200},
		{name: "TLS /metrics is open too", url: "https://" + addr + "/metrics", tls: client(nil), want: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, tc.url, tc.tls, tc.token)
			if code != tc.want || !strings.Contains(body, tc.wantBody) {
				t.Errorf("GET %s = %d %q, want %d containing %q", tc.url, code, body, tc.want, tc.wantBody)
			}
		})
	}
}

func TestLoopbackPeersAndNoIdentity(t *testing.T) {
	// Without TLS and an authorizer (a sidecar without identity), beyond
	// loopback only the open paths are served...
	ip := hostaddr.IPv4(t)
	addr := serve(t, ip, nil, nil)
	if code, body := get(t, "http://"+addr+"/config_dump", nil, ""); code != 403 || !strings.Contains(body, "loopback only") {
		t.Errorf("/config_dump from beyond loopback = %d %q, want 403 saying loopback only", code, body)
	}
	if code, _ := get(t, "http://"+addr+"/ready", nil, ""); code != 200 {
		t.Errorf("/ready = %d, want 200", code)
	}
	// ...while a loopback peer (kubectl exec, a preStop hook) gets all.
	local := serve(t, "127.0.0.1", nil, nil)
	if code, _ := get(t, "http://"+local+"/config_dump", nil, ""); code != 200 {
		t.Errorf("/config_dump from loopback = %d, want 200", code)
	}
}
