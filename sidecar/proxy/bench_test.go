package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/shoal-mesh/shoal/sidecar/accesslog"
	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/leastloaded"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// rawBackend is a minimal keep-alive HTTP/1.1 server answering every
// request with a fixed response, so that benchmark allocations come from
// the proxy alone. Its goroutines end when the listener and conns close.
type rawBackend struct {
	*acceptLoop
	count atomic.Int64 // request heads received
	resp  string       // the response; rawResponse when empty
}

// acceptLoop serves every connection its listener accepts on a goroutine
// of its own; at cleanup it closes the listener and the connections and
// waits for the goroutines.
type acceptLoop struct {
	l     net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startAcceptLoop(tb testing.TB, serve func(net.Conn)) *acceptLoop {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	a := &acceptLoop{l: l}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			a.mu.Lock()
			a.conns = append(a.conns, c)
			a.mu.Unlock()
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				serve(c)
			}()
		}
	}()
	tb.Cleanup(func() {
		l.Close()
		a.mu.Lock()
		for _, c := range a.conns {
			c.Close()
		}
		a.mu.Unlock()
		a.wg.Wait()
	})
	return a
}

const rawResponse = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!"

func startRawBackend(tb testing.TB) *rawBackend {
	tb.Helper()
	return startRawBackendWith(tb, rawResponse)
}

func startRawBackendWith(tb testing.TB, resp string) *rawBackend {
	tb.Helper()
	rb := &rawBackend{resp: resp}
	rb.acceptLoop = startAcceptLoop(tb, rb.serve)
	return rb
}

func (rb *rawBackend) serve(c net.Conn) {
	discard := bufio.NewWriter(io.Discard)
	br := bufReader{rd: c, buf: make([]byte, 8192)}
	var req request
	resp := []byte(rb.resp)
	for {
		head, err := br.head(8192, 65536, nil)
		if err != nil || parseRequest(&req, head, 100) != nil {
			return
		}
		rb.count.Add(1)
		if req.chunked {
			if copyChunked(discard, &br, false) != nil {
				return
			}
		} else if req.contentLength > 0 && copyN(discard, &br, req.contentLength) != nil {
			return
		}
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}

// rawClient sends keep-alive GETs and reads responses without allocating.
type rawClient struct {
	c   net.Conn
	br  bufReader
	req []byte
	res response
}

func newRawClient(tb testing.TB, addr string) *rawClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return &rawClient{c: c, br: bufReader{rd: c, buf: make([]byte, 8192)},
		req: []byte("GET /hello HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")}
}

func (rc *rawClient) do() error {
	if _, err := rc.c.Write(rc.req); err != nil {
		return err
	}
	head, err := rc.br.head(8192, 65536, nil)
	if err != nil {
		return err
	}
	if err := parseResponse(&rc.res, head); err != nil {
		return err
	}
	for n := rc.res.contentLength; n > 0; {
		if len(rc.br.buffered()) == 0 {
			if err := rc.br.fill(len(rc.br.buf)); err != nil {
				return err
			}
		}
		k := min(int64(len(rc.br.buffered())), n)
		rc.br.discard(int(k))
		n -= k
	}
	return nil
}

func BenchmarkProxyHTTP1(b *testing.B) {
	be := startRawBackend(b)
	addr := benchProxy(b, route.ClusterConfig{Name: "bench", Endpoints: []route.Endpoint{{Address: be.l.Addr().String(), Healthy: true}}})
	b.ReportAllocs()
	b.SetParallelism(25) // about 50 keep-alive clients on two cores
	defer reportCPU(b)()
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
}

// BenchmarkProxyHTTP1AccessLog is BenchmarkProxyHTTP1 with the access
// log on, written to a file as --access-log FILE does (issue 15: the
// line's cost next to nginx's).
func BenchmarkProxyHTTP1AccessLog(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
	if err != nil {
		b.Fatal(err)
	}
	al := accesslog.New(accesslog.Config{W: f})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { al.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done; f.Close() })
	be := startRawBackend(b)
	addr := benchProxyWith(b, Config{AccessLog: al}, route.ClusterConfig{Name: "bench", Endpoints: []route.Endpoint{{Address: be.l.Addr().String(), Healthy: true}}})
	b.ReportAllocs()
	b.SetParallelism(25)
	defer reportCPU(b)()
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
}

// BenchmarkProxyHTTP1LeastLoaded is BenchmarkProxyHTTP1 with a backend
// that reports its load (ORCA, as the Node.js package does) and a
// least_loaded cluster: the report is parsed, given to the balancer and
// stripped on every response (issue 17).
func BenchmarkProxyHTTP1LeastLoaded(b *testing.B) {
	be := startRawBackendWith(b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"+
		"endpoint-load-metrics: TEXT application_utilization=0.4213, cpu_utilization=0.2011, rps_fractional=812.5, named_metrics.eventloop_delay_p99_ms=11.53, named_metrics.requests_in_flight=3\r\n"+
		"Content-Length: 13\r\n\r\nHello, world!")
	cfg := lb.DefaultConfig()
	cfg.LeastLoaded.BlackoutPeriod = time.Nanosecond
	addr := benchProxy(b, route.ClusterConfig{Name: "bench", LB: leastloaded.Builder{}, LBConfig: cfg,
		Endpoints: []route.Endpoint{{Address: be.l.Addr().String(), Healthy: true}}})
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
}

// BenchmarkProxyHTTP1NewConn is one request per client connection (clients
// without keep-alive, health checkers): the per-connection cost. Its
// allocations include the benchmark client's dial.
func BenchmarkProxyHTTP1NewConn(b *testing.B) {
	be := startRawBackend(b)
	addr := benchProxy(b, route.ClusterConfig{Name: "bench", Endpoints: []route.Endpoint{{Address: be.l.Addr().String(), Healthy: true}}})
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 8192)
		for pb.Next() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			rc := &rawClient{c: c, br: bufReader{rd: c, buf: buf},
				req: []byte("GET /hello HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")}
			err = rc.do()
			c.Close()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchProxy serves an outbound proxy routing host "bench" to cc until the
// benchmark ends, and returns its address.
func benchProxy(b *testing.B, cc route.ClusterConfig) string {
	b.Helper()
	return benchProxyWith(b, Config{}, cc)
}

// benchProxyWith is benchProxy with the proxy's configuration.
func benchProxyWith(b *testing.B, cfg Config, cc route.ClusterConfig) string {
	b.Helper()
	p, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	tbl, err := route.New(route.Config{
		Loads:        p.Loads(),
		VirtualHosts: []route.VirtualHost{{Name: "bench", Domains: []string{"bench"}, Routes: []route.Route{{Match: route.Match{PathPrefix: "/"}, Clusters: one(cc.Name)}}}},
		Clusters:     []route.ClusterConfig{cc},
	})
	if err != nil {
		b.Fatal(err)
	}
	p.SetTable(tbl)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve(l, Mode{Kind: Outbound}) }()
	b.Cleanup(func() {
		p.Shutdown(context.Background())
		<-done
	})
	return l.Addr().String()
}

// rawH2Client sends GETs one at a time over an h2c prior-knowledge
// connection with x/net/http2's Framer and a pre-encoded header block, so
// that benchmark allocations come mostly from the proxy.
type rawH2Client struct {
	c       net.Conn
	fr      *http2.Framer
	block   []byte
	stream  uint32
	unacked uint32 // DATA bytes not yet returned by a WINDOW_UPDATE
}

func newRawH2Client(tb testing.TB, addr string) *rawH2Client {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	enc.SetMaxDynamicTableSize(0) // every block stands alone: it is resent as is
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "bench"}, {":path", "/hello"}, {"user-agent", "bench"}, {"accept", "*/*"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	rc := &rawH2Client{c: c, fr: http2.NewFramer(c, c), block: block.Bytes(), stream: 1}
	rc.fr.SetReuseFrames()
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		tb.Fatal(err)
	}
	if err := rc.fr.WriteSettings(); err != nil {
		tb.Fatal(err)
	}
	return rc
}

func (rc *rawH2Client) do() error {
	id := rc.stream
	rc.stream += 2
	if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.block, EndStream: true, EndHeaders: true}); err != nil {
		return err
	}
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			return err
		}
		end := false
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				err = rc.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				err = rc.fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			return fmt.Errorf("GOAWAY %v", f.ErrCode)
		case *http2.RSTStreamFrame:
			return fmt.Errorf("RST_STREAM %v", f.ErrCode)
		case *http2.HeadersFrame:
			end = f.StreamID == id && f.StreamEnded()
		case *http2.DataFrame:
			if rc.unacked += f.Length; rc.unacked > 16<<10 {
				err = rc.fr.WriteWindowUpdate(0, rc.unacked)
				rc.unacked = 0
			}
			end = f.StreamID == id && f.StreamEnded()
		}
		if err != nil || end {
			return err
		}
	}
}

// rawH2Backend is a minimal h2c server answering every request with a
// fixed response from the connection's read loop.
type rawH2Backend struct {
	*acceptLoop
}

func startRawH2Backend(tb testing.TB) *rawH2Backend {
	tb.Helper()
	rb := &rawH2Backend{}
	rb.acceptLoop = startAcceptLoop(tb, rb.serve)
	return rb
}

func (rb *rawH2Backend) serve(c net.Conn) {
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	enc.SetMaxDynamicTableSize(0)
	for _, f := range [][2]string{{":status", "200"}, {"content-type", "text/plain"}, {"content-length", "13"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	body := []byte("Hello, world!")
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	bw := bufio.NewWriter(c)
	fr := http2.NewFramer(bw, c)
	fr.SetReuseFrames()
	if fr.WriteSettings() != nil || bw.Flush() != nil {
		return
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				err = fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				err = fr.WritePing(true, f.Data)
			}
		case *http2.HeadersFrame:
			if f.StreamEnded() {
				err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: block.Bytes(), EndHeaders: true})
				if err == nil {
					err = fr.WriteData(f.StreamID, true, body)
				}
			}
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			return
		}
	}
}

// BenchmarkProxyH2C measures one h2c GET through the proxy (server side
// x/net/http2, client side net/http transports) to an HTTP/1.1 and to an
// h2c upstream.
func BenchmarkProxyH2C(b *testing.B) {
	for _, up := range []struct {
		name     string
		protocol route.Protocol
		start    func(testing.TB) string
	}{
		{"upstream=http1", route.HTTP1, func(tb testing.TB) string { return startRawBackend(tb).l.Addr().String() }},
		{"upstream=h2c", route.HTTP2, func(tb testing.TB) string { return startRawH2Backend(tb).l.Addr().String() }},
	} {
		b.Run(up.name, func(b *testing.B) {
			addr := benchProxy(b, route.ClusterConfig{Name: "bench", Protocol: up.protocol,
				Endpoints: []route.Endpoint{{Address: up.start(b), Healthy: true}}})
			b.ReportAllocs()
			b.SetParallelism(25)
			defer reportCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				rc := newRawH2Client(b, addr)
				for pb.Next() {
					if err := rc.do(); err != nil {
						b.Error(err)
						return
					}
				}
				rc.c.Close()
			})
		})
	}
}

func BenchmarkParseRequest(b *testing.B) {
	head := []byte("GET /api/v1/orders?limit=10 HTTP/1.1\r\nHost: orders.svc:8080\r\nUser-Agent: node\r\n" +
		"Accept: application/json\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n" +
		"Cookie: session=abc123; theme=dark\r\nX-Request-Id: 2b7c0c5e-0c0e-4a52-9c35-6c0a9f1b1e2d\r\n\r\n")
	var req request
	b.ReportAllocs()
	b.SetBytes(int64(len(head)))
	for b.Loop() {
		if err := parseRequest(&req, head, 100); err != nil {
			b.Fatal(err)
		}
	}
}
