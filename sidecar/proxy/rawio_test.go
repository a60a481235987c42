package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// rawClientConn dials addr with the test deadline and returns the conn
// and a reader for the responses.
func rawClientConn(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(defaultTestTimeout))
	return c, bufio.NewReader(c)
}

// readBody reads one response and returns its body.
func readBody(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("response: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	return string(b)
}

// The proxy waits for a keep-alive client's next request without a read
// attempt; these are the ways the next bytes can arrive.
func TestClientBytesArrivingAtAnyMoment(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 8)
	be := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, r.URL.Path+":"+string(body))
	})
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(be)}, route.Route{}))

	t.Run("pipelined in one write", func(t *testing.T) {
		c, br := rawClientConn(t, addr)
		io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nPOST /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
		for _, want := range []string{"/1:", "/2:", "/3:hi"} {
			if got := readBody(t, br); got != want {
				t.Fatalf("body = %q, want %q", got, want)
			}
		}
	})
	t.Run("next request sent while the upstream still works on the first", func(t *testing.T) {
		c, br := rawClientConn(t, addr)
		io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
		<-arrived // the proxy is waiting for the upstream's answer
		io.WriteString(c, "GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
		release <- struct{}{}
		for _, want := range []string{"/slow:", "/next:"} {
			if got := readBody(t, br); got != want {
				t.Fatalf("body = %q, want %q", got, want)
			}
		}
	})
	t.Run("head and body in separate writes", func(t *testing.T) {
		c, br := rawClientConn(t, addr)
		for i := range 3 {
			io.WriteString(c, "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
			time.Sleep(10 * time.Millisecond) // stimulus: the body arrives later than the head
			io.WriteString(c, "hello")
			if got := readBody(t, br); got != "/b:hello" {
				t.Fatalf("request %d: body = %q", i, got)
			}
		}
	})
	t.Run("head split across writes", func(t *testing.T) {
		c, br := rawClientConn(t, addr)
		head := "GET /split HTTP/1.1\r\nHost: a\r\nX-Long: " + strings.Repeat("x", 100) + "\r\n\r\n"
		for i := range 3 {
			for _, part := range []string{head[:7], head[7:40], head[40:]} {
				io.WriteString(c, part)
				time.Sleep(5 * time.Millisecond) // stimulus: separate segments
			}
			if got := readBody(t, br); got != "/split:" {
				t.Fatalf("request %d: body = %q", i, got)
			}
		}
	})
	t.Run("chunked body then a plain request", func(t *testing.T) {
		c, br := rawClientConn(t, addr)
		io.WriteString(c, "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
		if got := readBody(t, br); got != "/c:abc" {
			t.Fatalf("body = %q", got)
		}
		io.WriteString(c, "GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
		if got := readBody(t, br); got != "/after:" {
			t.Fatalf("body = %q", got)
		}
	})
	t.Run("many keep-alive requests one at a time", func(t *testing.T) {
		c, br := rawClientConn(t, addr)
		for i := range 200 {
			io.WriteString(c, "GET /k HTTP/1.1\r\nHost: a\r\n\r\n")
			if got := readBody(t, br); got != "/k:" {
				t.Fatalf("request %d: body = %q", i, got)
			}
		}
	})
}

// An idle keep-alive connection waiting inside the raw read still times
// out and still lets Shutdown finish.
func TestIdleRawConnectionTimesOut(t *testing.T) {
	be := startBackend(t, "a", nil)
	p, addr := startProxy(t, Config{IdleTimeout: 200 * time.Millisecond}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(be)}, route.Route{}))
	c, br := rawClientConn(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	readBody(t, br)
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read = %v, want EOF after the idle timeout", err)
	}
}

// An upstream may answer before it has read the whole request body (an
// early 200 or 413). The proxy streams a large body and must then find
// that answer, already waiting, instead of waiting for another wakeup.
func TestEarlyUpstreamAnswerToAStreamedBody(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	const early = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly"
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.WriteString(c, early) // before reading the body
					io.Copy(io.Discard, req.Body)
				}
			}()
		}
	}()
	p, addr := startProxy(t, Config{ReplayBufferBytes: 16}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: []route.Endpoint{{Address: l.Addr().String(), Healthy: true}}}, route.Route{}))
	c, br := rawClientConn(t, addr)
	body := strings.Repeat("b", 256<<10)
	for i := range 5 {
		go io.WriteString(c, "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 262144\r\n\r\n"+body)
		if got := readBody(t, br); got != "early" {
			t.Fatalf("request %d: body = %q, want the early answer", i, got)
		}
	}
}
