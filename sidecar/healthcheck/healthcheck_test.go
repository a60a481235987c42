package healthcheck_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-mesh/shoal/sidecar/healthcheck"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type verdict struct {
	healthy bool
	reason  string
}

func start(t *testing.T, cfg healthcheck.Config) chan verdict {
	t.Helper()
	ch := make(chan verdict, 64)
	cfg.Interval = 10 * time.Millisecond
	if cfg.Timeout == 0 {
		// The checks follow the app's answers; a check must not fail
		// because a loaded machine stalled it past a 10 ms timeout.
		cfg.Timeout = 5 * time.Second
	}
	cfg.OnChange = func(h bool, r string) { ch <- verdict{h, r} }
	c, err := healthcheck.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ch
}

func next(t *testing.T, ch chan verdict) verdict {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no health verdict within 10s")
		return verdict{}
	}
}

func TestHTTPCheckFollowsTheApp(t *testing.T) {
	var failing atomic.Bool
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer app.Close()
	ch := start(t, healthcheck.Config{Address: strings.TrimPrefix(app.URL, "http://"), Path: "/healthz", Fall: 2})
	if v := next(t, ch); !v.healthy {
		t.Fatalf("first verdict = %+v, want healthy", v)
	}
	failing.Store(true)
	v := next(t, ch)
	if v.healthy || !strings.Contains(v.reason, "503") {
		t.Fatalf("after the app fails: %+v, want unhealthy naming 503", v)
	}
	failing.Store(false)
	if v := next(t, ch); !v.healthy {
		t.Fatalf("after recovery: %+v, want healthy", v)
	}
}

func TestTCPCheckSeesAClosedPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ch := start(t, healthcheck.Config{Address: addr})
	if v := next(t, ch); !v.healthy {
		t.Fatalf("first verdict = %+v, want healthy", v)
	}
	l.Close()
	if v := next(t, ch); v.healthy {
		t.Fatalf("after the port closed: %+v, want unhealthy", v)
	}
}

func TestNewRequiresAddress(t *testing.T) {
	if _, err := healthcheck.New(healthcheck.Config{}); err == nil {
		t.Fatal("New without Address succeeded")
	}
}
