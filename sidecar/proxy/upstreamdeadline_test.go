package proxy

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// An upstream connection keeps the read deadline an earlier request armed
// as long as it is ahead and no later than the next request needs
// (upConn.armRead). A request that waits past such an earlier deadline
// still gets its answer, the route timeout still answers 504 on time, and
// a POST still reuses the pooled connection after that deadline passed
// while it was idle.
func TestEarlierRequestsDeadlineDoesNotCutTheNext(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]bool{} // the proxy's connections, by address
	be := startBackend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/slow") {
			time.Sleep(300 * time.Millisecond) // the slow answer itself (service time), not synchronisation
		}
		w.Write([]byte("ok " + r.Method + " " + r.URL.Path))
	})
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	tbl, err := route.New(route.Config{
		Loads: p.Loads(),
		VirtualHosts: []route.VirtualHost{{Name: "a", Domains: []string{"a"}, Routes: []route.Route{
			{Match: route.Match{PathPrefix: "/short"}, Clusters: one("a"), Timeout: 100 * time.Millisecond},
			{Match: route.Match{PathPrefix: "/slow-short"}, Clusters: one("a"), Timeout: 100 * time.Millisecond},
			{Match: route.Match{PathPrefix: "/"}, Clusters: one("a"), Timeout: 10 * time.Second},
		}}},
		Clusters: []route.ClusterConfig{{Name: "a", Endpoints: endpoints(be), Outlier: route.OutlierDetection{Disabled: true}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.SetTable(tbl)
	cl := client(t)
	check := func(method, path string, wantCode int, wantBody string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "a"
		res, err := cl.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		body := new(strings.Builder)
		_, err = io.Copy(body, res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != wantCode || (wantBody != "" && body.String() != wantBody) {
			t.Fatalf("%s %s: %d %q (%v), want %d %q", method, path, res.StatusCode, body, err, wantCode, wantBody)
		}
	}
	// The first request arms a deadline 100 ms ahead; the second one
	// waits 300 ms on the same connection under a 10 s timeout.
	check("GET", "/short", 200, "ok GET /short")
	check("GET", "/slow", 200, "ok GET /slow")
	check("GET", "/short", 200, "ok GET /short")
	time.Sleep(150 * time.Millisecond) // the deadline passes while the connection is idle
	check("POST", "/slow", 200, "ok POST /slow")
	mu.Lock()
	n := len(conns)
	mu.Unlock()
	if n != 1 {
		t.Errorf("the backend saw %d connections, want 1 (the pooled one reused)", n)
	}
	// A deadline armed further ahead by the previous request is brought
	// in for this one's 100 ms.
	check("GET", "/slow-short", 504, "")
}

// A request buffered for retries that the upstream does not take (it
// accepted the connection and reads nothing) ends at the route timeout:
// the blocked write is bounded by it, not by the stream idle timeout.
func TestRouteTimeoutBoundsABlockedRequestWrite(t *testing.T) {
	stop := make(chan struct{})
	be := startAcceptLoop(t, func(net.Conn) { <-stop })
	t.Cleanup(func() { close(stop) }) // before the accept loop's cleanup
	p, addr := startProxy(t, Config{ReplayBufferBytes: 32 << 20, StreamIdleTimeout: time.Hour}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: []route.Endpoint{{Address: be.l.Addr().String(), Healthy: true}},
		Outlier: route.OutlierDetection{Disabled: true}},
		route.Route{Timeout: 300 * time.Millisecond, Retry: &route.RetryPolicy{On: route.RetryConnectFailure}}))
	req, err := http.NewRequest("POST", "http://"+addr+"/", bytes.NewReader(make([]byte, 32<<20)))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "a"
	cl := client(t)
	cl.Timeout = 10 * time.Second // the stream idle timeout would take an hour
	res, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 504 {
		t.Errorf("status %d, want 504", res.StatusCode)
	}
}
