package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// pathBackend is a raw HTTP/1.1 backend that records the path of every
// request head it parses, with the proxy's own strict parser. On /reset it
// reads a few body bytes and resets the connection; on /hang it stops
// reading and never answers; anything else has its body read and gets 200.
type pathBackend struct {
	*acceptLoop
	mu    sync.Mutex
	paths []string
}

func startPathBackend(t *testing.T) *pathBackend {
	t.Helper()
	pb := &pathBackend{}
	pb.acceptLoop = startAcceptLoop(t, pb.serve)
	return pb
}

func (pb *pathBackend) addr() string { return pb.l.Addr().String() }

func (pb *pathBackend) seen() []string {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	return append([]string(nil), pb.paths...)
}

func (pb *pathBackend) serve(c net.Conn) {
	br := bufReader{rd: c, buf: make([]byte, 8192)}
	discard := bufio.NewWriter(io.Discard)
	var req request
	for {
		head, err := br.head(8192, 65536, nil)
		if err != nil || parseRequest(&req, head, 100) != nil {
			return
		}
		pb.mu.Lock()
		pb.paths = append(pb.paths, string(req.path))
		pb.mu.Unlock()
		switch string(req.path) {
		case "/reset":
			io.ReadFull(&br, make([]byte, 5))
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			return
		case "/hang":
			io.Copy(io.Discard, c) // until the proxy or the cleanup closes it
			return
		}
		if req.chunked {
			err = copyChunked(discard, &br, false)
		} else if req.contentLength > 0 {
			err = copyN(discard, &br, req.contentLength)
		}
		if err != nil {
			return
		}
		if _, err := io.WriteString(c, rawResponse); err != nil {
			return
		}
	}
}

const smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

// earlyAnswer sends head and the first bytes of a body much longer than
// that (more of it while no answer came: an upstream reset shows when the
// proxy next writes to it), then, once the proxy answered, a request as
// if the body had ended. It returns the status of the answer and fails
// the test unless the proxy then closes the connection without answering
// anything else.
func earlyAnswer(t *testing.T, addr, head, bodyStart string) int {
	t.Helper()
	c, br := rawClientConn(t, addr)
	if _, err := io.WriteString(c, head+bodyStart); err != nil {
		t.Fatal(err)
	}
	filler := strings.Repeat("x", 1000)
	for sent := 0; ; sent += len(filler) {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := br.Peek(1)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || sent > 50000 {
			t.Fatalf("no early answer: %v", err)
		}
		io.WriteString(c, filler) // may fail once the proxy closed
	}
	c.SetDeadline(time.Now().Add(defaultTestTimeout))
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no early answer: %v", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	io.WriteString(c, smuggled) // may fail: the proxy may have closed already
	rest, err := io.ReadAll(br)
	if errors.Is(err, net.ErrClosed) || err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("after the early answer: %v (want the connection closed)", err)
	}
	if len(rest) > 0 {
		t.Fatalf("the proxy answered again after its early answer: %q", rest)
	}
	return res.StatusCode
}

// After the proxy answered a request whose body was still arriving (an
// upstream reset mid-body, a local reply, a route timeout on the net/http
// path), no byte the client sends afterwards is ever parsed as a request:
// the connection is closed. Sidecar and gateway listeners alike.
func TestNoRequestIsParsedFromABodyAfterAnEarlyAnswer(t *testing.T) {
	be := startPathBackend(t)
	hang := blockingH2CBackend(t)
	for _, mode := range []Mode{{Kind: Outbound}, {Kind: Gateway}} {
		p, addr := startProxy(t, Config{}, mode)
		tbl, err := route.New(route.Config{
			VirtualHosts: []route.VirtualHost{
				{Name: "a", Domains: []string{"a"}, Routes: []route.Route{{Clusters: one("a")}}},
				{Name: "h2", Domains: []string{"h2"}, Routes: []route.Route{{Clusters: one("h2"), Timeout: 200 * time.Millisecond}}},
			},
			Clusters: []route.ClusterConfig{
				{Name: "a", Endpoints: []route.Endpoint{{Address: be.addr(), Healthy: true}}},
				{Name: "h2", Protocol: route.HTTP2, Endpoints: endpoints(hang)},
			},
			Loads: p.Loads(),
		})
		if err != nil {
			t.Fatal(err)
		}
		p.SetTable(tbl)
		const (
			cl      = "Content-Length: 100000\r\n\r\n"
			chunked = "Transfer-Encoding: chunked\r\n\r\n186a0\r\n"
		)
		for _, tc := range []struct {
			name, head string
			wantCode   int
		}{
			{"upstream reset, Content-Length", "POST /reset HTTP/1.1\r\nHost: a\r\n" + cl, 502},
			{"upstream reset, chunked", "POST /reset HTTP/1.1\r\nHost: a\r\n" + chunked, 502},
			{"no route, Content-Length", "POST /x HTTP/1.1\r\nHost: nosuch\r\n" + cl, 404},
			{"no route, chunked", "POST /x HTTP/1.1\r\nHost: nosuch\r\n" + chunked, 404},
			{"route timeout on an h2c cluster, Content-Length", "POST /x HTTP/1.1\r\nHost: h2\r\n" + cl, 504},
			{"route timeout on an h2c cluster, chunked", "POST /x HTTP/1.1\r\nHost: h2\r\n" + chunked, 504},
		} {
			t.Run(modeName(mode)+"/"+tc.name, func(t *testing.T) {
				if code := earlyAnswer(t, addr, tc.head, "0123456789"); code != tc.wantCode {
					t.Errorf("early answer %d, want %d", code, tc.wantCode)
				}
			})
		}
		// A request with a body on a connection whose previous request's
		// body was read: the body state is per request.
		t.Run(modeName(mode)+"/no route after a served body", func(t *testing.T) {
			c, br := rawClientConn(t, addr)
			io.WriteString(c, "POST /ok HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
			if body := readBody(t, br); body != "Hello, world!" {
				t.Fatalf("first request: %q", body)
			}
			io.WriteString(c, "POST /x HTTP/1.1\r\nHost: nosuch\r\nContent-Length: 100000\r\n\r\n0123456789")
			res, err := http.ReadResponse(br, nil)
			if err != nil || res.StatusCode != 404 {
				t.Fatalf("second request: %v %v, want 404", res, err)
			}
			io.Copy(io.Discard, res.Body)
			io.WriteString(c, smuggled)
			if rest, _ := io.ReadAll(br); len(rest) > 0 {
				t.Fatalf("the proxy answered a request parsed from a body: %q", rest)
			}
		})
	}
	for _, p := range be.seen() {
		if p == "/smuggled" {
			t.Fatalf("the backend received a request parsed from a body: %q", be.seen())
		}
	}
}

func modeName(m Mode) string {
	switch m.Kind {
	case Gateway:
		return "gateway"
	case Inbound:
		return "inbound"
	}
	return "outbound"
}
