package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// resetBackend closes every connection without answering and records the
// X-Request-Id of each request it saw.
func resetBackend(t *testing.T, name string) (*backend, func() []string) {
	var mu sync.Mutex
	var ids []string
	b := startBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ids = append(ids, r.Header.Get("X-Request-Id"))
		mu.Unlock()
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	})
	return b, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), ids...)
	}
}

func noDuplicates(t *testing.T, ids []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("request %s reached the same host twice", id)
		}
		seen[id] = true
	}
}

func TestRetryResetOnAnotherHost(t *testing.T) {
	bad, badIDs := resetBackend(t, "bad")
	good := startBackend(t, "good", nil)
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	retry := &route.RetryPolicy{On: route.RetryReset, NumRetries: 3}
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(bad, good), Outlier: route.OutlierDetection{Disabled: true}}, route.Route{Retry: retry}))
	cl := client(t)
	for range 20 {
		if code, from, _ := get(t, cl, addr, "a", "/"); code != 200 || from != "good" {
			t.Fatalf("got %d from %q, want 200 from good", code, from)
		}
	}
	if len(badIDs()) == 0 {
		t.Error("the resetting backend was never tried")
	}
	noDuplicates(t, badIDs())
}

func TestRetryExhaustedNeverSameHostTwice(t *testing.T) {
	bad1, ids1 := resetBackend(t, "bad1")
	bad2, ids2 := resetBackend(t, "bad2")
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	retry := &route.RetryPolicy{On: route.RetryReset, NumRetries: 5}
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(bad1, bad2), Outlier: route.OutlierDetection{Disabled: true}}, route.Route{Retry: retry}))
	cl := client(t)
	for range 5 {
		if code, _, _ := get(t, cl, addr, "a", "/"); code != 502 {
			t.Fatalf("status = %d, want 502", code)
		}
	}
	if n1, n2 := len(ids1()), len(ids2()); n1 != 5 || n2 != 5 {
		t.Errorf("attempts per host = %d, %d; want 5 each (one per request)", n1, n2)
	}
	noDuplicates(t, ids1())
	noDuplicates(t, ids2())
}

func TestRetryPOSTOnlyWhenPolicyAllows(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	bad := startBackend(t, "bad", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(503)
	})
	good := startBackend(t, "good", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	})
	tests := []struct {
		name      string
		retry     *route.RetryPolicy
		replay    int
		body      string
		want503   bool
		wantBody  string
		wantCodes string
	}{
		{name: "retried under a 5xx policy", retry: &route.RetryPolicy{On: route.Retry5xx, NumRetries: 2}, body: "payload"},
		{name: "not retried without a policy", body: "payload", want503: true},
		{name: "not retried when the body exceeds the replay buffer", retry: &route.RetryPolicy{On: route.Retry5xx, NumRetries: 2}, replay: 16, body: strings.Repeat("x", 64<<10), want503: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, addr := startProxy(t, Config{ReplayBufferBytes: tc.replay}, Mode{Kind: Outbound})
			p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(bad, good), Outlier: route.OutlierDetection{Disabled: true}}, route.Route{Retry: tc.retry}))
			cl := client(t)
			got503 := false
			for range 10 {
				res, err := cl.Post("http://"+addr+"/", "text/plain", strings.NewReader(tc.body))
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				switch res.StatusCode {
				case 503:
					got503 = true
				case 200:
				default:
					t.Fatalf("status %d", res.StatusCode)
				}
			}
			if got503 != tc.want503 {
				t.Errorf("some POST got 503 = %v, want %v", got503, tc.want503)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, b := range bodies {
				if b != tc.body {
					t.Fatalf("backend got body of %d bytes, want %d", len(b), len(tc.body))
				}
			}
			bodies = nil
		})
	}
}

// blockingBackend answers only when its client goes away.
func blockingBackend(t *testing.T) *backend {
	return startBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
}

func TestRouteTimeout(t *testing.T) {
	slow := blockingBackend(t)
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(slow)}, route.Route{Timeout: 50 * time.Millisecond}))
	if code, _, body := get(t, client(t), addr, "a", "/"); code != 504 {
		t.Errorf("status = %d (%q), want 504", code, body)
	}
}

func TestPerTryTimeoutRetries(t *testing.T) {
	slow, fast := blockingBackend(t), startBackend(t, "fast", nil)
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	retry := &route.RetryPolicy{On: route.RetryReset, NumRetries: 1, PerTryTimeout: 50 * time.Millisecond}
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(slow, fast), Outlier: route.OutlierDetection{Disabled: true}}, route.Route{Retry: retry}))
	cl := client(t)
	for range 4 {
		if code, from, _ := get(t, cl, addr, "a", "/"); code != 200 || from != "fast" {
			t.Fatalf("got %d from %q, want 200 from fast", code, from)
		}
	}
}

// TestPerTryTimeoutEndsWithTheHeaders: a per-try timeout bounds the wait
// for the response headers, not the body: a download that streams for
// longer than it arrives whole.
func TestPerTryTimeoutEndsWithTheHeaders(t *testing.T) {
	const chunks = 6
	streaming := startBackend(t, "stream", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		for i := range chunks {
			fmt.Fprintf(w, "chunk %d;", i)
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond) // the body takes 6x the per-try timeout
		}
	})
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	retry := &route.RetryPolicy{On: route.RetryReset, NumRetries: 1, PerTryTimeout: 50 * time.Millisecond}
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(streaming)}, route.Route{Retry: retry}))
	code, _, body := get(t, client(t), addr, "a", "/")
	if want := "chunk 0;chunk 1;chunk 2;chunk 3;chunk 4;chunk 5;"; code != 200 || body != want {
		t.Errorf("got %d %q, want 200 and the whole body %q", code, body, want)
	}
}

func TestOutlierEjection(t *testing.T) {
	bad := startBackend(t, "bad", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	good := startBackend(t, "good", nil)
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	od := route.OutlierDetection{Consecutive5xx: 3, MaxEjectionPercent: 50, BaseEjectionTime: time.Hour}
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(bad, good), Outlier: od}, route.Route{}))
	cl := client(t)
	fails := 0
	for range 30 {
		if code, _, _ := get(t, cl, addr, "a", "/"); code == 500 {
			fails++
		}
	}
	if fails != 3 {
		t.Errorf("%d requests failed, want 3 before ejection", fails)
	}
	st := p.Clusters()[0]
	if st.Ejected != 1 || !st.Endpoints[0].Ejected || st.Endpoints[0].TimesEjected != 1 {
		t.Errorf("cluster status = %+v, want the bad endpoint ejected", st)
	}
	// A table swap keeps the ejection.
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(bad, good), Outlier: od}, route.Route{}))
	if code, from, _ := get(t, cl, addr, "a", "/"); code != 200 || from != "good" {
		t.Errorf("after swap got %d from %q, want 200 from good", code, from)
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	var bs []*backend
	for range 4 {
		bs = append(bs, startBackend(t, "bad", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	}
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	od := route.OutlierDetection{Consecutive5xx: 1, MaxEjectionPercent: 50, BaseEjectionTime: time.Hour}
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(bs...), Outlier: od}, route.Route{}))
	cl := client(t)
	for range 40 {
		get(t, cl, addr, "a", "/")
	}
	if n := p.Clusters()[0].Ejected; n != 2 {
		t.Errorf("ejected = %d, want 2 (50 %% of 4)", n)
	}
}
