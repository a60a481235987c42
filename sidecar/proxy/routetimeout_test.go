package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// routeTimeout is the short route timeout of these tests; transfers are
// paced to last several times longer (pace below).
const (
	routeTimeout = 300 * time.Millisecond
	pace         = 100 * time.Millisecond
	pieces       = 10
)

// pacedReader yields pieces of size bytes, one per pace tick: a client
// uploading slowly. It never reports its length.
type pacedReader struct {
	left int
	size int
	tick *time.Ticker
}

func newPacedReader(t *testing.T, size int) *pacedReader {
	tick := time.NewTicker(pace)
	t.Cleanup(tick.Stop)
	return &pacedReader{left: pieces, size: size, tick: tick}
}

func (r *pacedReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	<-r.tick.C
	r.left--
	return copy(p, bytes.Repeat([]byte("u"), min(r.size, len(p)))), nil
}

// timeoutBackend counts request bodies (/upload), streams paced pieces
// (/download with a Content-Length, /events as Server-Sent Events), and
// never answers /hang.
func timeoutBackend(t *testing.T) *backend {
	return startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload":
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				w.WriteHeader(400)
				return
			}
			fmt.Fprint(w, n)
		case "/download", "/events":
			if r.URL.Path == "/download" {
				w.Header().Set("Content-Length", strconv.Itoa(pieces*1000))
			} else {
				w.Header().Set("Content-Type", "text/event-stream")
			}
			rc := http.NewResponseController(w)
			tick := time.NewTicker(pace)
			defer tick.Stop()
			for i := range pieces {
				if r.URL.Path == "/download" {
					w.Write(bytes.Repeat([]byte("d"), 1000))
				} else {
					fmt.Fprintf(w, "data: %d\n\n", i)
				}
				if rc.Flush() != nil {
					return
				}
				<-tick.C
			}
		case "/hang":
			<-r.Context().Done()
		}
	})
}

// The route timeout runs from the end of the request to the response
// headers, as Envoy's: an upload, a download or an event stream that
// lasts longer completes, while an upstream that does not answer gets
// 504 at the route timeout.
func TestRouteTimeoutEndsWithTheResponseHeaders(t *testing.T) {
	be := timeoutBackend(t)
	policy := &route.RetryPolicy{On: route.RetryReset, NumRetries: 1}
	for _, rt := range []route.Route{{Timeout: routeTimeout}, {Timeout: routeTimeout, Retry: policy}} {
		p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
		p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(be)}, rt))
		c := client(t)
		name := "streamed"
		if rt.Retry != nil {
			name = "buffered for retries"
		}
		for _, length := range []bool{true, false} {
			t.Run(name+"/paced upload, length "+strconv.FormatBool(length), func(t *testing.T) {
				var body io.Reader = newPacedReader(t, 1000)
				req, _ := http.NewRequest("POST", "http://"+addr+"/upload", body)
				if length {
					req.ContentLength = pieces * 1000
				}
				req.Host = "a"
				res, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				got, _ := io.ReadAll(res.Body)
				if res.StatusCode != 200 || string(got) != strconv.Itoa(pieces*1000) {
					t.Errorf("got %d %q, want 200 %d", res.StatusCode, got, pieces*1000)
				}
			})
		}
		t.Run(name+"/paced download", func(t *testing.T) {
			code, _, body := get(t, c, addr, "a", "/download")
			if code != 200 || len(body) != pieces*1000 {
				t.Errorf("got %d and %d bytes, want 200 and %d", code, len(body), pieces*1000)
			}
		})
		t.Run(name+"/server-sent events", func(t *testing.T) {
			code, _, body := get(t, c, addr, "a", "/events")
			if code != 200 || strings.Count(body, "data: ") != pieces {
				t.Errorf("got %d %q, want 200 and %d events", code, body, pieces)
			}
		})
		t.Run(name+"/hung upstream", func(t *testing.T) {
			if code, _, _ := get(t, c, addr, "a", "/hang"); code != 504 {
				t.Errorf("got %d, want 504", code)
			}
		})
	}
}

// With the route timeout disabled (timeout: 0s), the stream idle timeout
// still ends the wait for an upstream that never answers.
func TestStreamIdleTimeoutWithoutARouteTimeout(t *testing.T) {
	be := timeoutBackend(t)
	p, addr := startProxy(t, Config{StreamIdleTimeout: loadedTimeout}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(be)}, route.Route{}))
	c := client(t)
	if code, _, body := get(t, c, addr, "a", "/download"); code != 200 || len(body) != pieces*1000 {
		t.Errorf("download: %d and %d bytes, want 200 and %d", code, len(body), pieces*1000)
	}
	if code, _, _ := get(t, c, addr, "a", "/hang"); code != 504 {
		t.Errorf("hung upstream: %d, want 504", code)
	}
}
