package openloop

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRunCountsTheWaitOfUnsentRequests: with one connection and a server
// taking 100 ms per request, 20 requests scheduled over one second finish
// after about two; the last one was due at 0.95 s, so its latency from the
// intended send time is about a second. A closed-loop generator would
// report 100 ms for every request.
func TestRunCountsTheWaitOfUnsentRequests(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond) // the server's service time, not synchronisation
		w.Header().Set("X-Backend", "b1")
	}))
	defer srv.Close()
	res, err := Run(t.Context(), Config{URL: srv.URL, Rate: 20, Duration: time.Second, MaxConns: 1, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 20 || res.OK != 20 || res.ErrorCount() != 0 {
		t.Fatalf("sent %d, ok %d, errors %v; want 20 sent and answered", res.Sent, res.OK, res.Errors)
	}
	if got := res.Quantile(1); got < 900*time.Millisecond {
		t.Errorf("largest latency %v, want at least 900ms (the queue behind the one connection)", got)
	}
	if got := res.Quantile(0); got < 100*time.Millisecond {
		t.Errorf("smallest latency %v, want at least the 100ms service time", got)
	}
	var n int64
	for _, b := range res.Buckets {
		n += b["b1"]
	}
	if n != 20 || res.Backends["b1"] != 20 {
		t.Errorf("b1 answered %d in buckets and %d in all, want 20", n, res.Backends["b1"])
	}
}

func TestRunCountsErrorsByKind(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) % 3 {
		case 0:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 1:
			w.Header().Set("X-Backend", "b1")
		default: // answered without naming a backend
		}
	}))
	defer srv.Close()
	res, err := Run(t.Context(), Config{URL: srv.URL, Rate: 300, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 30 || res.OK+res.ErrorCount() != 30 {
		t.Fatalf("sent %d, ok %d, errors %v; want 30 accounted for", res.Sent, res.OK, res.Errors)
	}
	if res.Errors["status 503"] != 10 || res.Errors["no backend header"] != 10 || res.OK != 10 {
		t.Errorf("ok %d, errors %v; want 10 of each", res.OK, res.Errors)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, c := range []Config{{Rate: 1, Duration: time.Second}, {URL: "http://x", Duration: time.Second}, {URL: "http://x", Rate: 1}} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("Run(%+v) succeeded, want an error", c)
		}
	}
}

func TestClosedMeasuresThroughput(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	rps, failures, err := Closed(t.Context(), srv.URL, 4, 200*time.Millisecond)
	if err != nil || rps <= 0 || failures != 0 {
		t.Errorf("Closed = %v rps, %d failures, %v; want some rps and no failure", rps, failures, err)
	}
}
