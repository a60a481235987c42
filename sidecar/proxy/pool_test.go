package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// TestPooledConnBuffersStartClean: client connections reuse pooled
// buffers, so a connection must never see what an earlier one left behind
// — a half-sent request, a pipelined request it never read, a head large
// enough to grow the read buffer, a peer address — and every request is
// answered for itself.
func TestPooledConnBuffersStartClean(t *testing.T) {
	be := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s xff=%s", r.URL.Path, r.Header.Get("X-Id"), r.Header.Get("X-Forwarded-For"))
	})
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(be)}, route.Route{Match: route.Match{PathPrefix: "/"}}))

	send := func(local, raw string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for i := range 60 {
		id := fmt.Sprintf("req-%d", i)
		local := fmt.Sprintf("127.0.0.%d", 2+i%3)
		switch i % 4 {
		case 1: // half a request, then gone
			send(local, "GET /half HTTP/1.1\r\nHost: x\r\nX-Id: half-"+id).Close()
		case 2: // a pipelined second request it never reads
			c := send(local, "GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\nX-Id: leftover\r\n\r\n")
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil {
				res.Body.Close()
			}
			c.Close()
		case 3: // a head that grows the read buffer past its pooled size
			c := send(local, "GET /big HTTP/1.1\r\nHost: x\r\nX-Id: "+id+"\r\nX-Pad: "+strings.Repeat("p", 12<<10)+"\r\nConnection: close\r\n\r\n")
			body := readConnBody(t, c)
			if want := "/big " + id + " xff=" + local; body != want {
				t.Errorf("big head: body %q, want %q", body, want)
			}
		}
		c := send(local, "GET /check HTTP/1.1\r\nHost: x\r\nX-Id: "+id+"\r\nConnection: close\r\n\r\n")
		if body, want := readConnBody(t, c), "/check "+id+" xff="+local; body != want {
			t.Fatalf("connection %d: body %q, want %q", i, body, want)
		}
	}
}

func readConnBody(t *testing.T, c net.Conn) string {
	t.Helper()
	defer c.Close()
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, b)
	}
	return string(b)
}
