package proxy

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// Stall detection where HTTP/2 is involved: on the frame-level path (an
// h2c client calling an h2c upstream) and on the net/http bridge between
// the protocols (an HTTP/1.1 client calling an h2c upstream, an h2c
// client calling an HTTP/1.1 one). One of three instances holds every
// request it gets and answers none (its event loop is blocked). With the
// default settings it is marked stalled; GETs waiting on it go to the
// other instances and every one is answered 200, a POST waiting on it
// ends 504 with the stalled mark, and it gets no new request until it
// answers again.
func TestH2StalledEndpoint(t *testing.T) {
	for _, tc := range protocolPaths[1:] { // HTTP/1.1 to HTTP/1.1: stall_test.go
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each waits out a 5 s probe interval
			testStalledEndpoint(t, tc.proto, tc.c(t))
		})
	}
}

func testStalledEndpoint(t *testing.T, proto route.Protocol, c *http.Client) {
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(open)
	h2 := proto == route.HTTP2
	hang := startBackendProto(t, "hang", func(w http.ResponseWriter, r *http.Request) { <-release }, h2)
	good1, good2 := startBackendProto(t, "good1", nil, h2), startBackendProto(t, "good2", nil, h2)
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "svc", Protocol: proto, Endpoints: endpoints(good1, hang, good2)}, route.Route{}))

	type result struct {
		method string
		code   int
		from   string
		mark   string
		err    error
	}
	send := func(out chan<- result, method string) {
		var body io.Reader    // a GET has none: without a retry policy only the
		if method == "POST" { // frame-level path keeps a body to send again
			body = strings.NewReader("x")
		}
		req, _ := http.NewRequest(method, "http://"+addr+"/", body)
		req.Host = "svc"
		res, err := c.Do(req)
		if err != nil {
			out <- result{method: method, err: err}
			return
		}
		res.Body.Close()
		out <- result{method: method, code: res.StatusCode, from: res.Header.Get("X-Backend"), mark: res.Header.Get(stalledHeader)}
	}
	const gets, posts = 12, 4
	out := make(chan result, gets+posts)
	for i := range gets + posts {
		method := "GET"
		if i%4 == 3 {
			method = "POST"
		}
		go send(out, method)
	}
	for range gets + posts {
		r := <-out
		switch {
		case r.err != nil:
			t.Errorf("%s: %v", r.method, r.err)
		case r.code == 200 && r.from != "hang":
		case r.method == "POST" && r.code == 504 && r.mark == "1":
			// It was waiting on the stuck instance: not sent again.
		default:
			t.Errorf("%s: %d from %q (stalled mark %q), want 200 from a good instance (or 504 marked for a POST)", r.method, r.code, r.from, r.mark)
		}
	}
	if st := p.Clusters()[0]; st.Stalled != 1 {
		t.Errorf("/clusters stalled = %d, want 1", st.Stalled)
	}
	before := hang.count.Load()
	for range 6 {
		if code, from, _ := get(t, c, addr, "svc", "/"); code != 200 || from == "hang" {
			t.Errorf("GET after the stall: %d from %q", code, from)
		}
	}
	if n := hang.count.Load(); n != before {
		t.Errorf("the stalled instance got %d new requests, want none (its probe comes after 5 s)", n-before)
	}
	// Once it answers again, a probe (an idempotent request, one per 5 s)
	// clears the mark.
	open()
	eventually(t, "the stall mark cleared by a probe", func() bool {
		get(t, c, addr, "svc", "/")
		return p.Clusters()[0].Stalled == 0
	})
}
