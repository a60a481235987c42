package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/accesslog"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// lockedBuffer is an io.Writer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// hungBackend accepts connections and reads requests but never answers,
// as a Node.js process whose event loop is blocked looks from outside (the
// kernel accepts and buffers for it). It records the methods it received.
type hungBackend struct {
	l  net.Listener
	mu sync.Mutex
	// conns and methods are guarded by mu.
	conns   []net.Conn
	methods []string
	wg      sync.WaitGroup
}

func startHung(t *testing.T) *hungBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hb := &hungBackend{l: l}
	hb.wg.Add(1)
	go func() {
		defer hb.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			hb.mu.Lock()
			hb.conns = append(hb.conns, c)
			hb.mu.Unlock()
			hb.wg.Add(1)
			go hb.read(c)
		}
	}()
	t.Cleanup(hb.close)
	return hb
}

// read records each request line's method; it never writes.
func (hb *hungBackend) read(c net.Conn) {
	defer hb.wg.Done()
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if m, _, ok := strings.Cut(line, " "); ok && (m == "GET" || m == "POST") {
			hb.mu.Lock()
			hb.methods = append(hb.methods, m)
			hb.mu.Unlock()
		}
	}
}

func (hb *hungBackend) addr() string { return hb.l.Addr().String() }

func (hb *hungBackend) count(method string) int {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	n := 0
	for _, m := range hb.methods {
		if m == method {
			n++
		}
	}
	return n
}

// release closes the connections: requests hung on them end.
func (hb *hungBackend) release() {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	for _, c := range hb.conns {
		c.Close()
	}
	hb.conns = nil
}

func (hb *hungBackend) close() {
	hb.l.Close()
	hb.release()
	hb.wg.Wait()
}

// fleet is three healthy backends and a hung one, in one cluster.
func fleet(t *testing.T) ([]*backend, *hungBackend, []route.Endpoint) {
	t.Helper()
	var bs []*backend
	for _, n := range []string{"a", "b", "c"} {
		bs = append(bs, startBackend(t, n, nil))
	}
	hb := startHung(t)
	eps := append(endpoints(bs...), route.Endpoint{Address: hb.addr(), Healthy: true})
	return bs, hb, eps
}

type result struct {
	code    int
	backend string
	err     error
}

func do(c *http.Client, addr, method string) result {
	req, err := http.NewRequest(method, "http://"+addr+"/x", bytes.NewReader([]byte("body")))
	if err != nil {
		return result{err: err}
	}
	if method == "GET" {
		req.Body, req.ContentLength = nil, 0
	}
	req.Host = "svc"
	res, err := c.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer res.Body.Close()
	io.Copy(io.Discard, res.Body)
	return result{code: res.StatusCode, backend: res.Header.Get("X-Backend")}
}

// fire sends n requests of method at once and returns a channel of their
// results.
func fire(c *http.Client, addr, method string, n int) <-chan result {
	out := make(chan result, n)
	for range n {
		go func() { out <- do(c, addr, method) }()
	}
	return out
}

// One hung endpoint holds at most its own in-flight limit: requests that
// would have gone to it go to the healthy ones instead of filling the
// cluster's circuit breaker (which used to answer every request 503).
func TestHungEndpointDoesNotTakeTheClusterBudget(t *testing.T) {
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	_, hb, eps := fleet(t)
	cc := route.ClusterConfig{Name: "svc", Endpoints: eps, MaxRequests: 8, MaxRequestsPerEndpoint: 2,
		Stall: route.StallDetection{Disabled: true}}
	p.SetTable(simpleTable(t, p, cc, route.Route{}))
	c := client(t)

	const n = 40
	// One at a time, so that the limit is exact: each request is either
	// answered or hung on the hung endpoint before the next one starts.
	var mu sync.Mutex
	var got []result
	results := make(chan result, n)
	hung := func() int64 { return p.Clusters()[0].Endpoints[3].Attempts }
	for i := range n {
		go func() {
			r := do(c, addr, "GET")
			mu.Lock()
			got = append(got, r)
			mu.Unlock()
			results <- r
		}()
		eventually(t, "the request answered or hung", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return int64(len(got))+hung() == int64(i+1)
		})
	}
	mu.Lock()
	for _, r := range got {
		if r.err != nil || r.code != 200 {
			t.Fatalf("request: %d %v; want 200 from a healthy endpoint", r.code, r.err)
		}
	}
	answered := len(got)
	mu.Unlock()
	if answered != n-2 {
		t.Errorf("answered %d of %d; want all but the hung endpoint's limit (2)", answered, n)
	}
	for range answered {
		<-results
	}
	st := p.Clusters()[0]
	if st.MaxRequests != 8 || st.MaxRequestsPerEndpoint != 2 {
		t.Errorf("/clusters limits = %d, %d; want 8, 2", st.MaxRequests, st.MaxRequestsPerEndpoint)
	}
	if got := st.Endpoints[3].Attempts; got != 2 {
		t.Errorf("attempts in flight on the hung endpoint = %d, want 2", got)
	}
	// The hung connections close: their GETs go to healthy endpoints.
	hb.release()
	for range 2 {
		if r := <-results; r.err != nil || r.code != 200 {
			t.Fatalf("request hung then released: %d %v; want 200", r.code, r.err)
		}
	}
}

// When every endpoint is at its limit, requests are refused with 503
// (upstream overflow) at once rather than queued.
func TestEveryEndpointFullIsOverflow(t *testing.T) {
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	hb := startHung(t)
	cc := route.ClusterConfig{Name: "svc", Endpoints: []route.Endpoint{{Address: hb.addr(), Healthy: true}},
		MaxRequestsPerEndpoint: 2, Stall: route.StallDetection{Disabled: true}}
	p.SetTable(simpleTable(t, p, cc, route.Route{}))
	c := client(t)
	results := fire(c, addr, "GET", 2)
	eventually(t, "two requests hung", func() bool { return p.Clusters()[0].Endpoints[0].Attempts == 2 })
	if r := do(c, addr, "GET"); r.code != 503 {
		t.Errorf("third request: %d %v; want 503 (overflow)", r.code, r.err)
	}
	hb.close() // the hung ones end (502: no other endpoint)
	for range 2 {
		<-results
	}
}

// A stalled endpoint is detected with the default configuration: GETs
// hung on it are retried on healthy endpoints, POSTs on it end with 504,
// nothing is answered 503, and the stall is counted.
func TestStalledEndpointDefaults(t *testing.T) {
	logger, logBuf := startAccessLog(t, accesslog.Text)
	p, addr := startProxy(t, Config{AccessLog: logger}, Mode{Kind: Outbound})
	_, hb, eps := fleet(t)
	cc := route.ClusterConfig{Name: "svc", Endpoints: eps} // defaults, no route policy
	p.SetTable(simpleTable(t, p, cc, route.Route{}))
	c := client(t)

	gets := fire(c, addr, "GET", 24)
	posts := fire(c, addr, "POST", 24)
	post504 := 0
	for range 24 {
		r := <-gets
		if r.err != nil || r.code != 200 || r.backend == "" {
			t.Fatalf("GET: %d from %q, %v; want 200 from a healthy endpoint", r.code, r.backend, r.err)
		}
	}
	for range 24 {
		r := <-posts
		switch {
		case r.err != nil:
			t.Fatalf("POST: %v", r.err)
		case r.code == 504:
			post504++
		case r.code != 200:
			t.Fatalf("POST: %d; want 200, or 504 when it was sent to the hung endpoint", r.code)
		}
	}
	if got := hb.count("POST"); post504 != got {
		t.Errorf("POSTs answered 504: %d; POSTs the hung endpoint received: %d", post504, got)
	}
	if hb.count("GET")+hb.count("POST") < 2 {
		t.Fatalf("the hung endpoint received %d requests; the test needs 2", hb.count("GET")+hb.count("POST"))
	}
	st := p.Clusters()[0]
	if !st.Endpoints[3].Stalled || st.Stalled != 1 {
		t.Errorf("/clusters: hung endpoint stalled=%v, cluster stalled=%d; want true, 1", st.Endpoints[3].Stalled, st.Stalled)
	}
	if v := p.metrics.stalls.WithLabelValues("svc").Value(); v != 1 {
		t.Errorf("stalls_total = %v, want 1", v)
	}
	eventually(t, "a 504 with the flag UST in the access log", func() bool {
		for _, line := range strings.Split(logBuf.String(), "\n") {
			if strings.Contains(line, " 504 ") && strings.Contains(line, "UST") {
				return true
			}
		}
		return false
	})
	// New requests skip it (idempotent ones may probe it only once the
	// probe interval has passed).
	for range 12 {
		if r := do(c, addr, "POST"); r.code != 200 {
			t.Fatalf("POST after the stall: %d %v; want 200", r.code, r.err)
		}
	}
}

// The stall rule, on an injected clock: one slow request is never a
// stall; two in flight and no completion for the threshold are; a
// completed response clears the mark.
func TestCheckStall(t *testing.T) {
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	p.stateMu.Lock()
	cs := p.clusterState("svc")
	h, _ := cs.host("127.0.0.1:1", p.metrics)
	p.stateMu.Unlock()
	s := route.StallDetection{}.WithDefaults()
	t0 := time.Unix(1000, 0)
	h.onResponse(t0, 10*time.Millisecond)
	if thr := h.stallThreshold(&s); thr != s.Min {
		t.Errorf("threshold with a 10ms peak = %v, want the minimum %v", thr, s.Min)
	}
	h.peak.Store(int64(time.Second))
	if thr := h.stallThreshold(&s); thr != s.Max {
		t.Errorf("threshold with a 1s peak = %v, want the maximum %v", thr, s.Max)
	}
	h.peak.Store(int64(10 * time.Millisecond))

	h.load.begin()
	if h.checkStall(&s, t0, t0.Add(time.Minute)) {
		t.Error("one request in flight for a minute counted as a stall")
	}
	h.load.begin()
	if h.checkStall(&s, t0, t0.Add(s.Min/2)) {
		t.Error("stalled before the threshold")
	}
	if !h.checkStall(&s, t0, t0.Add(s.Min)) {
		t.Error("two requests in flight, none answered for the threshold: not stalled")
	}
	if cs.stalled.Load() != 1 {
		t.Errorf("cluster stalled = %d, want 1", cs.stalled.Load())
	}
	if h.takesRequest(&s, false) {
		t.Error("a stalled endpoint takes a POST")
	}
	h.onResponse(t0.Add(s.Min+time.Millisecond), s.Min)
	if h.stalled.Load() || cs.stalled.Load() != 0 {
		t.Error("a completed response did not clear the stall")
	}
	if h.checkStall(&s, t0, t0.Add(s.Min+2*time.Millisecond)) {
		t.Error("stalled right after a response")
	}
}

// Through a peer sidecar (mTLS meshes call the instance's inbound
// listener, not the app): the peer marks its stuck app stalled and
// answers 504 with X-Shoal-Stalled; the calling sidecar marks the peer
// stalled and sends GETs to another instance. POSTs that reached the
// stuck app end with 504.
func TestStalledBehindPeerSidecar(t *testing.T) {
	hb := startHung(t)
	in, inAddr := startProxy(t, Config{}, Mode{Kind: Inbound, Cluster: "app"})
	in.SetTable(simpleTable(t, in, route.ClusterConfig{Name: "app", Endpoints: []route.Endpoint{{Address: hb.addr(), Healthy: true}}}, route.Route{}))
	healthy := startBackend(t, "a", nil)
	out, outAddr := startProxy(t, Config{}, Mode{Kind: Outbound})
	// The caller's own threshold is longer than the peer's: the peer's
	// answer is what moves the requests.
	out.SetTable(simpleTable(t, out, route.ClusterConfig{Name: "svc",
		Endpoints: []route.Endpoint{{Address: healthy.addr(), Healthy: true}, {Address: inAddr, Healthy: true}},
		Stall:     route.StallDetection{Min: time.Minute, Max: time.Minute}}, route.Route{}))
	c := client(t)

	gets := fire(c, outAddr, "GET", 12)
	posts := fire(c, outAddr, "POST", 12)
	for range 12 {
		if r := <-gets; r.err != nil || r.code != 200 || r.backend != "a" {
			t.Fatalf("GET: %d from %q, %v; want 200 from the healthy instance", r.code, r.backend, r.err)
		}
	}
	post504 := 0
	for range 12 {
		switch r := <-posts; {
		case r.err != nil:
			t.Fatalf("POST: %v", r.err)
		case r.code == 504:
			post504++
		case r.code != 200:
			t.Fatalf("POST: %d; want 200, or 504 when it reached the stuck app", r.code)
		}
	}
	if got := hb.count("POST"); post504 != got {
		t.Errorf("POSTs answered 504: %d; POSTs the stuck app received: %d", post504, got)
	}
	if !out.Clusters()[0].Endpoints[1].Stalled {
		t.Error("the calling sidecar did not mark the peer stalled")
	}
}

// Slow start: an endpoint that joins a cluster takes a small share of the
// picks at first (the 10 % floor of its round-robin share) and its full
// share once the window has passed; endpoints present from the start do
// not warm up.
func TestSlowStartRampsANewEndpoint(t *testing.T) {
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	eps := []route.Endpoint{{Address: "127.0.0.1:1", Healthy: true}, {Address: "127.0.0.1:2", Healthy: true}, {Address: "127.0.0.1:3", Healthy: true}}
	cc := route.ClusterConfig{Name: "svc", Endpoints: eps, SlowStart: route.SlowStart{Window: time.Hour}}
	p.SetTable(simpleTable(t, p, cc, route.Route{}))
	cc.Endpoints = append(eps, route.Endpoint{Address: "127.0.0.1:4", Healthy: true})
	p.SetTable(simpleTable(t, p, cc, route.Route{}))
	b := p.bound.Load()
	hosts := b.hosts[0]
	for i, h := range hosts {
		if warming := h.joined.Load() != 0; warming != (i == 3) {
			t.Fatalf("host %d warming = %v", i, warming)
		}
	}
	share := func() float64 {
		const n = 8000
		newcomer := 0
		for range n {
			var a attempt
			a.init(b, nil, b.table.Clusters[0], time.Now(), 1)
			if _, h := a.pick(); h == hosts[3] {
				newcomer++
			}
		}
		return float64(newcomer) / n
	}
	// Its full share is 25 %; at 10 % of its weight it gets about 2.7 %.
	if s := share(); s > 0.08 || s == 0 {
		t.Errorf("a new endpoint's share at the start of its window = %.3f, want about 0.027", s)
	}
	if f := p.Clusters()[0].Endpoints[3].SlowStart; f != 0.1 {
		t.Errorf("/clusters slow_start = %v, want 0.1", f)
	}
	hosts[3].joined.Store(time.Now().Add(-time.Hour).UnixNano()) // the window has passed
	if s := share(); s < 0.2 {
		t.Errorf("a warmed-up endpoint's share = %.3f, want about 0.25", s)
	}
	if hosts[3].joined.Load() != 0 {
		t.Error("the endpoint still warms up after its window")
	}
}
