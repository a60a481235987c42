package proxy

import (
	"bufio"
	"context"
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

// rawTLSListener accepts TLS connections over NewTLSSock as the sidecar's
// mTLS listener does; its connections become RawTLSConn once their
// handshake ran.
type rawTLSListener struct {
	net.Listener
	cfg *tls.Config
}

func (l rawTLSListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &rawTLSTestConn{Conn: tls.Server(NewTLSSock(nc), l.cfg)}, nil
}

type rawTLSTestConn struct {
	*tls.Conn
	ready bool
}

func (c *rawTLSTestConn) Read(p []byte) (int, error) {
	if !c.ready {
		if err := c.Conn.Handshake(); err != nil {
			return 0, err
		}
		c.ready = true
	}
	return c.Conn.Read(p)
}

func (c *rawTLSTestConn) RawTLS() *tls.Conn {
	if !c.ready {
		return nil
	}
	return c.Conn
}

var testXFCC = []byte("By=test;URI=client")

func (c *rawTLSTestConn) XFCC() []byte { return testXFCC }

// flushConn holds writes until flush, so that several TLS records leave in
// one TCP segment.
type flushConn struct {
	net.Conn
	buf  []byte
	hold bool
}

func (f *flushConn) Write(p []byte) (int, error) {
	if f.hold {
		f.buf = append(f.buf, p...)
		return len(p), nil
	}
	return f.Conn.Write(p)
}

func (f *flushConn) flush() error {
	b := f.buf
	f.buf, f.hold = nil, false
	_, err := f.Conn.Write(b)
	return err
}

// An inbound TLS connection served from the raw read callbacks (after the
// first request, which runs the handshake on the blocking path): keep-alive
// requests, two requests in one record, two records in one TCP segment
// (the second held by the record layer, not the socket: no wakeup will
// come for it), a record split over two writes, and a body the blocking
// path reads, all answered in order with the caller's XFCC.
func TestInboundTLSRawPath(t *testing.T) {
	srv, up := testServerTLS(t, "inbound.test")
	be := startBackend(t, "app", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %d %s", r.Method, r.URL.Path, len(b), r.Header.Get("X-Forwarded-Client-Cert"))
	})
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := serveOn(t, p, rawTLSListener{Listener: l, cfg: srv}, Mode{Kind: Inbound, Cluster: "app"})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "app", Endpoints: endpoints(be)}, route.Route{}))

	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(defaultTestTimeout))
	fc := &flushConn{Conn: raw}
	tc := tls.Client(fc, up.ClientConfig("inbound.test"))
	br := bufio.NewReader(tc)
	req := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: app\r\n\r\n" }
	expect := func(path string, bodyLen int) {
		t.Helper()
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response to %s: %v", path, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		method := "GET"
		if bodyLen > 0 {
			method = "POST"
		}
		if want := fmt.Sprintf("%s %s %d By=test;URI=client", method, path, bodyLen); res.StatusCode != 200 || string(b) != want {
			t.Fatalf("response to %s: %d %q, want %q", path, res.StatusCode, b, want)
		}
	}
	for i := range 20 {
		path := fmt.Sprintf("/keepalive/%d", i)
		if _, err := io.WriteString(tc, req(path)); err != nil {
			t.Fatal(err)
		}
		expect(path, 0)
	}
	// Two requests in one record.
	io.WriteString(tc, req("/one-record/a")+req("/one-record/b"))
	expect("/one-record/a", 0)
	expect("/one-record/b", 0)
	// Two records in one TCP segment, several times.
	for i := range 5 {
		fc.hold = true
		a, b := fmt.Sprintf("/segment/%d/a", i), fmt.Sprintf("/segment/%d/b", i)
		io.WriteString(tc, req(a))
		io.WriteString(tc, req(b))
		if err := fc.flush(); err != nil {
			t.Fatal(err)
		}
		expect(a, 0)
		expect(b, 0)
	}
	// One record in two writes.
	fc.hold = true
	io.WriteString(tc, req("/split"))
	rec := fc.buf
	fc.buf, fc.hold = nil, false
	raw.Write(rec[:7])
	raw.Write(rec[7:])
	expect("/split", 0)
	// A body larger than the read buffer: the blocking path, then back.
	body := strings.Repeat("x", 100_000)
	io.WriteString(tc, "POST /body HTTP/1.1\r\nHost: app\r\nContent-Length: 100000\r\n\r\n"+body)
	expect("/body", len(body))
	io.WriteString(tc, req("/after-body"))
	expect("/after-body", 0)
}

// BenchmarkProxyHTTP1InboundTLS is BenchmarkProxyHTTP1 with the clients
// over TLS 1.3 to an inbound listener (the callee half of a sidecar's mTLS
// hop): path=raw as the sidecar serves it (RawTLSConn), path=blocking with
// plain tls.Server connections (the blocking read path, as before).
func BenchmarkProxyHTTP1InboundTLS(b *testing.B) {
	for _, raw := range []bool{false, true} {
		name := "path=blocking"
		if raw {
			name = "path=raw"
		}
		b.Run(name, func(b *testing.B) {
			srv, up := testServerTLS(b, "inbound.test")
			be := startRawBackend(b)
			p, err := New(Config{})
			if err != nil {
				b.Fatal(err)
			}
			tbl, err := route.New(route.Config{
				Loads:        p.Loads(),
				VirtualHosts: []route.VirtualHost{{Name: "app", Domains: []string{"*"}, Routes: []route.Route{{Match: route.Match{PathPrefix: "/"}, Clusters: one("app")}}}},
				Clusters:     []route.ClusterConfig{{Name: "app", Endpoints: []route.Endpoint{{Address: be.l.Addr().String(), Healthy: true}}}},
			})
			if err != nil {
				b.Fatal(err)
			}
			p.SetTable(tbl)
			tl, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var l net.Listener = tls.NewListener(tl, srv)
			if raw {
				l = rawTLSListener{Listener: tl, cfg: srv}
			}
			done := make(chan error, 1)
			go func() { done <- p.Serve(l, Mode{Kind: Inbound, Cluster: "app"}) }()
			b.Cleanup(func() {
				p.Shutdown(context.Background())
				<-done
			})
			b.ReportAllocs()
			b.SetParallelism(25)
			b.RunParallel(func(pb *testing.PB) {
				c, err := tls.Dial("tcp", tl.Addr().String(), up.ClientConfig("inbound.test"))
				if err != nil {
					b.Error(err)
					return
				}
				rc := &rawClient{c: c, br: bufReader{rd: c, buf: make([]byte, 8192)},
					req: []byte("GET /hello HTTP/1.1\r\nHost: app\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")}
				for pb.Next() {
					if err := rc.do(); err != nil {
						b.Error(err)
						break
					}
				}
				c.Close()
			})
		})
	}
}
