package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// poisonBackend is a raw HTTP/1.1 backend that misbehaves on request:
// /late answers and then, when the test says so (poison), sends a second
// response nobody asked for; HEAD /head-body answers with a body (at once,
// or on poison with /head-late); /upgrade answers a plain GET with 101 and
// bytes of another protocol. Every other request gets "ok <path>".
type poisonBackend struct {
	*acceptLoop
	poison chan struct{} // the test lets the late bytes go
	sent   chan struct{} // the late bytes were written
}

func startPoisonBackend(t *testing.T) *poisonBackend {
	t.Helper()
	pb := &poisonBackend{poison: make(chan struct{}, 1), sent: make(chan struct{}, 1)}
	pb.acceptLoop = startAcceptLoop(t, pb.serve)
	return pb
}

const poisonResponse = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\npoison"

func okResponse(path string) string {
	body := "ok " + path
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

func (pb *poisonBackend) serve(c net.Conn) {
	br := bufReader{rd: c, buf: make([]byte, 8192)}
	var req request
	for {
		head, err := br.head(8192, 65536, nil)
		if err != nil || parseRequest(&req, head, 100) != nil {
			return
		}
		var out, late string
		switch path := string(req.path); path {
		case "/late":
			out, late = okResponse(path), poisonResponse
		case "/head-body":
			out = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\npoison"
		case "/head-late":
			out, late = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", "poison"
		case "/upgrade":
			out = "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: other\r\n\r\n" + poisonResponse
		default:
			out = okResponse(path)
		}
		if _, err := io.WriteString(c, out); err != nil {
			return
		}
		if late != "" {
			<-pb.poison
			_, err := io.WriteString(c, late)
			pb.sent <- struct{}{}
			if err != nil {
				return
			}
		}
	}
}

// An upstream that sends bytes after a complete response (an unsolicited
// response, the body of a HEAD response, another protocol after a 101 to a
// plain GET) loses its connection: it is never pooled or reused, and the
// next request gets its own answer, not those bytes.
func TestMisbehavingUpstreamConnectionsAreNotReused(t *testing.T) {
	be := startPoisonBackend(t)
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: []route.Endpoint{{Address: be.l.Addr().String(), Healthy: true}},
		Outlier: route.OutlierDetection{Disabled: true}}, route.Route{}))
	for _, tc := range []struct {
		name, method, path string
		late               bool
		wantCode           int
	}{
		{"unsolicited response after a complete one", "GET", "/late", true, 200},
		{"HEAD answered with a body", "HEAD", "/head-body", false, 200},
		{"HEAD answered with a body that comes late", "HEAD", "/head-late", true, 200},
		{"101 to a plain GET", "GET", "/upgrade", false, 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := rawClientConn(t, addr)
			fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: a\r\n\r\n", tc.method, tc.path)
			res, err := readResponse(br, tc.method)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.wantCode {
				t.Errorf("status %d, want %d", res.StatusCode, tc.wantCode)
			}
			if tc.late {
				be.poison <- struct{}{}
				<-be.sent // on loopback the bytes are now in the proxy's socket
			}
			// The next request, from this client and from another one,
			// gets its own answer.
			fmt.Fprintf(c, "GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
			if res.StatusCode == 502 {
				c, br = rawClientConn(t, addr)
				fmt.Fprintf(c, "GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
			}
			if body := readBody(t, br); body != "ok /next" {
				t.Errorf("next request got %q, want %q", body, "ok /next")
			}
			if code, _, body := get(t, client(t), addr, "a", "/other"); code != 200 || body != "ok /other" {
				t.Errorf("another client got %d %q", code, body)
			}
		})
	}
}

// readResponse reads one response to a request with method and its body.
func readResponse(br *bufio.Reader, method string) (*http.Response, error) {
	res, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	_, err = io.Copy(io.Discard, res.Body)
	return res, err
}
