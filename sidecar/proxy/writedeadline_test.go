package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

const testWriteTimeout = 300 * time.Millisecond

// streamingBackend answers /big with size bytes written in 32 KiB pieces,
// each flushed (a streamed, chunked response unless length is set), and
// anything else with a short body. It reports the outcome of each /big
// response on the returned channel: nil when the whole body was written,
// else the write error — the proxy closed the upstream connection.
func streamingBackend(t *testing.T, size int, length bool) (*backend, <-chan error) {
	t.Helper()
	outcome := make(chan error, 4)
	be := startBackend(t, "big", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path != "/big" {
			io.WriteString(w, "small")
			return
		}
		if length {
			w.Header().Set("Content-Length", fmt.Sprint(size))
		}
		rc := http.NewResponseController(w)
		piece := bytes.Repeat([]byte("x"), 32<<10)
		for sent := 0; sent < size; sent += len(piece) {
			_, err := w.Write(piece)
			if err == nil {
				err = rc.Flush()
			}
			if err != nil {
				outcome <- err
				return
			}
		}
		outcome <- nil
	})
	return be, outcome
}

// waitOutcome returns the backend's next /big outcome.
func waitOutcome(t *testing.T, outcome <-chan error) error {
	t.Helper()
	select {
	case err := <-outcome:
		return err
	case <-time.After(defaultTestTimeout):
		t.Fatal("timed out waiting for the backend to finish or fail its response")
		return nil
	}
}

// drainUntilClosed reads what conn still holds and reports how many bytes
// there were; it fails the test unless the peer closed the connection.
func drainUntilClosed(t *testing.T, c net.Conn) int64 {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(defaultTestTimeout))
	n, err := io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the proxy kept the connection open (%d bytes read)", n)
	}
	return n
}

// A client that sends a request for a large response and never reads is
// cut off after WriteTimeout, on the raw read path (a GET) and on the
// blocking path (a request with a streamed body), and the upstream
// connection of its response is closed rather than pooled.
func TestWriteTimeoutClosesAClientThatStopsReading(t *testing.T) {
	const size = 64 << 20
	be, outcome := streamingBackend(t, size, false)
	p, addr := startProxy(t, Config{WriteTimeout: testWriteTimeout}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(be)}, route.Route{}))
	others := client(t)
	for i, tc := range []struct {
		name, request string
	}{
		{"GET served inside the raw read", "GET /big HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"POST with a chunked body on the blocking path", "POST /big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.(*net.TCPConn).SetReadBuffer(16 << 10)
			if _, err := io.WriteString(c, tc.request); err != nil {
				t.Fatal(err)
			}
			if code, _, body := get(t, others, addr, "a", "/small"); code != 200 || body != "small" {
				t.Errorf("another client meanwhile: %d %q, want 200 small", code, body)
			}
			if err := waitOutcome(t, outcome); err == nil {
				t.Fatal("the backend wrote the whole body to a client that never reads")
			}
			if n := drainUntilClosed(t, c); n >= size {
				t.Errorf("the client could read %d bytes, the whole body", n)
			}
			eventually(t, "the write timeout to be counted", func() bool {
				return p.metrics.writeTimeouts.Value() == float64(i+1)
			})
			if code, _, body := get(t, others, addr, "a", "/small"); code != 200 || body != "small" {
				t.Errorf("another client afterwards: %d %q, want 200 small", code, body)
			}
		})
	}
}

// smallSendBuffers sets the send buffer of each accepted connection. The
// kernel wakes a blocked writer once a third of its send buffer is free;
// with the default (autotuned to megabytes) a reader taking a little at a
// time would leave the proxy's writes waiting for a long while although it
// reads all along.
type smallSendBuffers struct {
	net.Listener
	size int
}

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(l.size)
	}
	return c, err
}

// A client that reads a large response slowly but steadily, for longer
// than WriteTimeout, gets all of it and keeps its connection. The pauses
// of the reader (100 ms) are a twentieth of the write timeout, so that a
// CPU-starved test goroutine (a loaded CI runner) is not taken for a
// client that stopped reading.
func TestWriteTimeoutSparesASlowReader(t *testing.T) {
	const size = 4 << 20
	const writeTimeout = loadedTimeout
	be, outcome := streamingBackend(t, size, true)
	p, err := New(Config{WriteTimeout: writeTimeout})
	if err != nil {
		t.Fatal(err)
	}
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(be)}, route.Route{}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := serveOn(t, p, smallSendBuffers{l, 32 << 10}, Mode{Kind: Outbound})
	c, br := rawClientConn(t, addr)
	c.(*net.TCPConn).SetReadBuffer(32 << 10)
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32<<10)
	got := 0
	slowUntil := time.Now().Add(2 * writeTimeout)
	tick := time.NewTicker(100 * time.Millisecond) // stimulus: the reader's pace
	defer tick.Stop()
	for time.Now().Before(slowUntil) {
		<-tick.C
		n, err := io.ReadFull(res.Body, buf)
		got += n
		if err != nil {
			t.Fatalf("slow read after %d bytes: %v", got, err)
		}
	}
	n, err := io.Copy(io.Discard, res.Body)
	if got += int(n); err != nil || got != size {
		t.Fatalf("read %d bytes, %v; want all %d", got, err, size)
	}
	if err := waitOutcome(t, outcome); err != nil {
		t.Fatalf("backend: %v", err)
	}
	io.WriteString(c, "GET /small HTTP/1.1\r\nHost: a\r\n\r\n")
	if body := readBody(t, br); body != "small" {
		t.Errorf("next request on the connection: %q", body)
	}
	if v := p.metrics.writeTimeouts.Value(); v != 0 {
		t.Errorf("write timeouts = %v, want 0", v)
	}
}

// An h2c client that grants flow-control window but never reads is cut
// off by the HTTP/2 server's WriteByteTimeout, set from WriteTimeout.
func TestWriteTimeoutClosesAnH2CClientThatStopsReading(t *testing.T) {
	const size = 64 << 20
	be, outcome := streamingBackend(t, size, false)
	p, addr := startProxy(t, Config{WriteTimeout: testWriteTimeout}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(be)}, route.Route{}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(16 << 10)
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	const maxWindow = 1<<31 - 1
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: maxWindow})
	fr.WriteWindowUpdate(0, maxWindow-65535)
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/big"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if err := waitOutcome(t, outcome); err == nil {
		t.Fatal("the backend wrote the whole body to a client that never reads")
	}
	if n := drainUntilClosed(t, c); n >= size {
		t.Errorf("the client could read %d bytes, the whole body", n)
	}
	eventually(t, "the write timeout to be counted", func() bool { return p.metrics.writeTimeouts.Value() == 1 })
}
