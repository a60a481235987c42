package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// testUpstreamTLS is an UpstreamTLS trusting one test CA, whose server
// certificate names the server ID as its DNS name.
type testUpstreamTLS struct{ roots *x509.CertPool }

func (u testUpstreamTLS) ClientConfig(serverID string) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: u.roots, ServerName: serverID, NextProtos: []string{"http/1.1"}}
}

// testServerTLS returns a TLS 1.3 server config with a P-256 certificate
// for name, and the UpstreamTLS that trusts it.
func testServerTLS(tb testing.TB, name string) (*tls.Config, testUpstreamTLS) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	srv := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	return srv, testUpstreamTLS{roots: roots}
}

// startTLSBackend serves serve on TLS connections (the handshake runs on
// the first read).
func startTLSBackend(tb testing.TB, srv *tls.Config, serve func(net.Conn)) *acceptLoop {
	tb.Helper()
	return startAcceptLoop(tb, func(c net.Conn) { serve(tls.Server(c, srv)) })
}

// The HTTP/1.1 path over an mTLS upstream (the record layer read and
// written from inside the connection's raw callback): keep-alive requests
// on pooled TLS connections, a streamed POST body, a response larger than
// the read buffer and a chunked one all arrive whole, and a pooled TLS
// connection the upstream closed is seen closed before a request that
// cannot be replayed is written to it (the socket under the TLS
// connection is peeked, as for plain ones).
func TestHTTP1OverUpstreamTLS(t *testing.T) {
	srv, up := testServerTLS(t, "backend.test")
	big := strings.Repeat("0123456789abcdef", 4096) // 64 KiB: several records and reads
	var conns atomic.Int64
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			io.WriteString(w, big)
		case "/chunked":
			w.(http.Flusher).Flush()
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		default:
			io.WriteString(w, "ok "+r.TLS.NegotiatedProtocol)
		}
	}))
	be.TLS = srv
	be.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	be.StartTLS()
	t.Cleanup(be.Close)

	p, addr := startProxy(t, Config{UpstreamTLS: up}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "tls", Endpoints: []route.Endpoint{{Address: be.Listener.Addr().String(), Healthy: true, ServerID: "backend.test"}}}, route.Route{}))
	c := client(t)
	get := func(path string, body io.Reader) string {
		t.Helper()
		method := http.MethodGet
		if body != nil {
			method = http.MethodPost
		}
		req, _ := http.NewRequest(method, "http://"+addr+path, body)
		req.Host = "tls"
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s %s: %d %v", method, path, res.StatusCode, err)
		}
		return string(b)
	}
	for i := range 50 {
		if got := get("/", nil); got != "ok http/1.1" {
			t.Fatalf("request %d: %q", i, got)
		}
	}
	if got := get("/big", nil); got != big {
		t.Fatalf("/big: %d bytes, want %d", len(got), len(big))
	}
	if got := get("/chunked", nil); got != "ab" {
		t.Fatalf("/chunked: %q", got)
	}
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(big[:1000]))
		pw.Write([]byte(big[1000:]))
		pw.Close()
	}()
	if got := get("/echo", pr); got != big {
		t.Fatalf("/echo of a streamed body: %d bytes, want %d", len(got), len(big))
	}
	// The upstream closes its idle connections (close_notify and FIN, as
	// a restarted sidecar's do): a POST whose body streams through, which
	// cannot be sent twice, must not be written to one of them.
	for i := range 5 {
		be.Config.SetKeepAlivesEnabled(false)
		be.Config.SetKeepAlivesEnabled(true)
		pr, pw := io.Pipe()
		go func() {
			pw.Write([]byte("streamed "))
			pw.Write([]byte("body"))
			pw.Close()
		}()
		if got := get("/echo", pr); got != "streamed body" {
			t.Fatalf("streamed POST %d after the upstream closed its idle connections: %q", i, got)
		}
	}
	if n := conns.Load(); n == 0 || n > 20 {
		t.Fatalf("the upstream accepted %d TLS connections for 67 requests from one client: want them pooled", n)
	}
}

// BenchmarkProxyHTTP1UpstreamTLS is BenchmarkProxyHTTP1 with the upstream
// over TLS 1.3 (P-256, AES-128-GCM): the outbound half of a sidecar's mTLS
// hop.
func BenchmarkProxyHTTP1UpstreamTLS(b *testing.B) {
	srv, up := testServerTLS(b, "backend.test")
	rb := &rawBackend{resp: rawResponse}
	rb.acceptLoop = startTLSBackend(b, srv, rb.serve)
	addr := benchProxyWith(b, Config{UpstreamTLS: up}, route.ClusterConfig{Name: "bench", Endpoints: []route.Endpoint{{Address: rb.l.Addr().String(), Healthy: true, ServerID: "backend.test"}}})
	b.ReportAllocs()
	b.SetParallelism(25)
	b.RunParallel(func(pb *testing.PB) {
		rc := newRawClient(b, addr)
		for pb.Next() {
			if err := rc.do(); err != nil {
				b.Error(err)
				return
			}
		}
		rc.c.Close()
	})
	if rb.count.Load() == 0 {
		b.Fatal(fmt.Errorf("no request reached the TLS backend"))
	}
}
