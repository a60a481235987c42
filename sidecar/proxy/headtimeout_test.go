package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// dripHead writes head to c one byte every interval (all of it at once
// when interval is zero, then nothing more) until the proxy closes the
// connection or the head is exhausted, in which case it goes silent. It
// returns what the proxy sent before closing, and fails the test if the
// proxy kept the connection until the test timeout.
func dripHead(t *testing.T, c net.Conn, head string, interval time.Duration) string {
	t.Helper()
	done := make(chan struct{})
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		if interval == 0 {
			io.WriteString(c, head)
			return
		}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := range len(head) {
			if _, err := c.Write([]byte{head[i]}); err != nil {
				return
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { close(done); <-wrote }()
	c.SetReadDeadline(time.Now().Add(defaultTestTimeout))
	got, err := io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the proxy kept a connection with an incomplete head open (got %q)", got)
	}
	return string(got)
}

// A request head must be complete ReadHeaderTimeout after its first byte,
// however it arrives: all at once with the connection, dripped a byte at a
// time (slowloris), or in part and then nothing. On sidecar and gateway
// listeners. A head still incomplete gets 408 when part of it came.
func TestReadHeaderTimeoutOnEveryPath(t *testing.T) {
	be := startBackend(t, "a", nil)
	// Far longer than the timeout: the head never completes before it.
	long := "GET / HTTP/1.1\r\nHost: a\r\nX-Drip: " + strings.Repeat("d", 4000) + "\r\n\r\n"
	for _, mode := range []Mode{{Kind: Outbound}, {Kind: Gateway}, {Kind: Inbound, Cluster: "a"}} {
		p, addr := startProxy(t, Config{ReadHeaderTimeout: 300 * time.Millisecond}, mode)
		p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(be)}, route.Route{}))
		for _, tc := range []struct {
			name     string
			interval time.Duration
			head     string
			first    bool // the first byte is written before the proxy accepts
		}{
			{"slow drip from the first byte", 20 * time.Millisecond, long, true},
			{"slow drip after an idle start", 20 * time.Millisecond, long, false},
			{"part of a head, then silence", 0, "GET / HTTP/1.1\r\nHost: a\r\n", true},
			{"part of a request line, then silence", 0, "GET /", false},
		} {
			t.Run(modeName(mode)+"/"+tc.name, func(t *testing.T) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if tc.first {
					// Written before the proxy's first read: it finds the
					// first bytes already there.
					io.WriteString(c, tc.head[:1])
					tc.head = tc.head[1:]
				}
				got := dripHead(t, c, tc.head, tc.interval)
				if got != "" && !strings.HasPrefix(got, "HTTP/1.1 408 ") {
					t.Errorf("got %q, want 408 or nothing", got)
				}
			})
		}
		t.Run(modeName(mode)+"/a whole head is served", func(t *testing.T) {
			if code, _, _ := get(t, client(t), addr, "a", "/"); code != 200 {
				t.Errorf("status %d, want 200", code)
			}
		})
	}
}

// With the default ReadHeaderTimeout (10 s, as the README promises) a
// slow-dripped head is closed, not served; the test takes about 10 s.
func TestReadHeaderTimeoutDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("takes the default header timeout (10 s); skipped with -short")
	}
	_, addr := startProxy(t, Config{}, Mode{Kind: Gateway})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	got := dripHead(t, c, "GET / HTTP/1.1\r\nHost: a\r\nX-Drip: "+strings.Repeat("d", 1000)+"\r\n\r\n", 250*time.Millisecond)
	if got != "" && !strings.HasPrefix(got, "HTTP/1.1 408 ") {
		t.Errorf("got %q, want 408 or nothing", got)
	}
	if d := time.Since(start); d < DefaultReadHeaderTimeout {
		t.Errorf("closed after %v, before the %v header timeout", d, DefaultReadHeaderTimeout)
	}
}
