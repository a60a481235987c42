package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-mesh/shoal/sidecar/accesslog"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

const (
	defaultTestTimeout      = 20 * time.Second
	defaultTestShortTimeout = 10 * time.Millisecond
)

func TestMain(m *testing.M) {
	if os.Getenv(acceptChildEnv) != "" {
		os.Exit(acceptChild())
	}
	// A client read inside serveRaw's callback would be a request that
	// serveBuffered should have left to the blocking path.
	rawReadHook = func() { panic("proxy: client read inside the raw read callback") }
	goleak.VerifyTestMain(m)
}

// backend is an httptest server that names itself in X-Backend and counts
// its requests.
type backend struct {
	*httptest.Server
	name  string
	count atomic.Int64
}

func (b *backend) addr() string { return b.Listener.Addr().String() }

func startBackend(t *testing.T, name string, h http.HandlerFunc) *backend {
	t.Helper()
	return startBackendProto(t, name, h, false)
}

// startH2CBackend is startBackend serving HTTP/2 with prior knowledge
// (h2c) as well as HTTP/1.1.
func startH2CBackend(t *testing.T, name string, h http.HandlerFunc) *backend {
	t.Helper()
	return startBackendProto(t, name, h, true)
}

func startBackendProto(t *testing.T, name string, h http.HandlerFunc, h2c bool) *backend {
	t.Helper()
	b := &backend{name: name}
	b.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.count.Add(1)
		w.Header().Set("X-Backend", name)
		if h != nil {
			h(w, r)
			return
		}
		fmt.Fprintf(w, "%s %s %s", name, r.Method, r.URL.Path)
	}))
	if h2c {
		b.Config.Protocols = new(http.Protocols)
		b.Config.Protocols.SetHTTP1(true)
		b.Config.Protocols.SetUnencryptedHTTP2(true)
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

func endpoints(bs ...*backend) []route.Endpoint {
	var eps []route.Endpoint
	for _, b := range bs {
		eps = append(eps, route.Endpoint{Address: b.addr(), Healthy: true})
	}
	return eps
}

func one(name string) []route.WeightedCluster {
	return []route.WeightedCluster{{Name: name, Weight: 1}}
}

// simpleTable routes every host and path to one cluster.
func simpleTable(t *testing.T, p *Proxy, cc route.ClusterConfig, r route.Route) *route.Table {
	t.Helper()
	if r.Clusters == nil {
		r.Clusters = one(cc.Name)
	}
	tbl, err := route.New(route.Config{
		VirtualHosts: []route.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []route.Route{r}}},
		Clusters:     []route.ClusterConfig{cc},
		Loads:        p.Loads(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// startProxy starts a proxy serving mode on a loopback port.
func startProxy(t *testing.T, cfg Config, mode Mode) (*Proxy, string) {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, p, mode)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return p, addr
}

func serve(t *testing.T, p *Proxy, mode Mode) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, p, l, mode)
}

// serveOn serves mode on l until cleanup.
func serveOn(t *testing.T, p *Proxy, l net.Listener, mode Mode) string {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.Serve(l, mode) }()
	t.Cleanup(func() {
		p.Shutdown(context.Background())
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

// client returns an HTTP client for the proxy whose connections are
// closed at cleanup.
func client(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: defaultTestTimeout}
}

// h2cClient returns an HTTP client that speaks HTTP/2 with prior
// knowledge (h2c) to the proxy; its connections are closed at cleanup.
func h2cClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: defaultTestTimeout}
}

// get sends a request through the proxy with the given Host and returns
// status, X-Backend and body.
func get(t *testing.T, c *http.Client, proxyAddr, host, path string, hdr ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+proxyAddr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return res.StatusCode, res.Header.Get("X-Backend"), string(body)
}

// eventually polls cond until it holds or the test timeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// startAccessLog starts an access logger in format that writes to the
// returned buffer every millisecond; it stops at the test's cleanup.
func startAccessLog(t *testing.T, format accesslog.Format) (*accesslog.Logger, *lockedBuffer) {
	t.Helper()
	buf := &lockedBuffer{}
	logger := accesslog.New(accesslog.Config{W: buf, Format: format, FlushInterval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	logged := make(chan struct{})
	go func() { defer close(logged); logger.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-logged })
	return logger, buf
}
