package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// rawBackend is a minimal keep-alive HTTP/1.1 server answering every
// request with a fixed response, so that benchmark allocations come from
// the proxy alone. Its goroutines end when the listener and conns close.
type rawBackend struct {
	l     net.Listener
	count atomic.Int64 // request heads received
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

const rawResponse = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!"

func startRawBackend(tb testing.TB) *rawBackend {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	rb := &rawBackend{l: l}
	rb.wg.Add(1)
	go func() {
		defer rb.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			rb.mu.Lock()
			rb.conns = append(rb.conns, c)
			rb.mu.Unlock()
			rb.wg.Add(1)
			go rb.serve(c)
		}
	}()
	tb.Cleanup(func() {
		l.Close()
		rb.mu.Lock()
		for _, c := range rb.conns {
			c.Close()
		}
		rb.mu.Unlock()
		rb.wg.Wait()
	})
	return rb
}

func (rb *rawBackend) serve(c net.Conn) {
	defer rb.wg.Done()
	discard := bufio.NewWriter(io.Discard)
	br := bufReader{rd: c, buf: make([]byte, 8192)}
	var req request
	resp := []byte(rawResponse)
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

// startBenchProxy starts a proxy routing Host "bench" to one raw backend
// and returns its listener address; it stops at the end of the benchmark.
func startBenchProxy(b *testing.B) string {
	be := startRawBackend(b)
	p, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	tbl, err := route.New(route.Config{
		Loads:        p.Loads(),
		VirtualHosts: []route.VirtualHost{{Name: "bench", Domains: []string{"bench"}, Routes: []route.Route{{Match: route.Match{PathPrefix: "/"}, Clusters: one("bench")}}}},
		Clusters:     []route.ClusterConfig{{Name: "bench", Endpoints: []route.Endpoint{{Address: be.l.Addr().String(), Healthy: true}}}},
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

func BenchmarkProxyHTTP1(b *testing.B) {
	addr := startBenchProxy(b)
	b.ReportAllocs()
	b.SetParallelism(25) // about 50 keep-alive clients on two cores
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
	addr := startBenchProxy(b)
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
