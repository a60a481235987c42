package harness

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// MaxLoadDuration caps every load run, whatever its options say.
const MaxLoadDuration = 2 * time.Minute

// LoadOptions configure a bounded load run. At least one of Requests and
// Duration must be set; the run stops at whichever comes first (and never
// later than MaxLoadDuration).
type LoadOptions struct {
	// URL is requested by every worker (e.g. a sidecar's upstream port).
	URL string
	// Host overrides the Host header (outbound and gateway listeners route
	// by it).
	Host string
	// Method defaults to GET.
	Method string
	// Requests bounds the number of requests in all; zero means no count
	// bound.
	Requests int
	// Duration bounds the run's time; zero means no time bound.
	Duration time.Duration
	// Concurrency is the number of workers, each with one keep-alive
	// connection; zero means 1.
	Concurrency int
	// Pace makes each worker wait this long between its requests (a
	// steady, bounded rate); zero means back to back.
	Pace time.Duration
	// Header returns extra headers for the n-th request (0-based); nil
	// means none.
	Header func(n int) http.Header
	// LocalIP binds the client side of connections (any 127.0.0.0/8
	// address on loopback), so IP hash sees distinct clients.
	LocalIP string
	// Timeout bounds each request; zero means 5s.
	Timeout time.Duration
	// Observe, if set, is called after every request from the worker's
	// goroutine (concurrently across workers): the request number, the
	// answering instance (x-instance, "" if none), the status (0 on a
	// transport error) and the transport error.
	Observe func(n int, instance string, status int, err error)
}

// LoadResult is what a load run measured.
type LoadResult struct {
	// Sent counts requests; OK the 2xx answers, Non2xx the others, Errors
	// the transport errors (no answer at all).
	Sent, OK, Non2xx, Errors int
	// ByInstance counts 2xx answers per x-instance.
	ByInstance map[string]int
	// LastSeen is when each instance last answered.
	LastSeen map[string]time.Time
	// FirstFailures describes up to 10 failures (non-2xx or errors).
	FirstFailures []string
	// Elapsed is the run's duration.
	Elapsed time.Duration

	latencies []time.Duration // sorted
}

// Failures is Non2xx + Errors.
func (r *LoadResult) Failures() int { return r.Non2xx + r.Errors }

// Share returns the fraction of 2xx answers that came from instance.
func (r *LoadResult) Share(instance string) float64 {
	if r.OK == 0 {
		return 0
	}
	return float64(r.ByInstance[instance]) / float64(r.OK)
}

// Latency returns the q-quantile (0..1) of request latencies.
func (r *LoadResult) Latency(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(q * float64(len(r.latencies)-1))
	return r.latencies[i]
}

// String summarises the run for t.Logf.
func (r *LoadResult) String() string {
	ids := make([]string, 0, len(r.ByInstance))
	for id := range r.ByInstance {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var dist []string
	for _, id := range ids {
		dist = append(dist, fmt.Sprintf("%s=%d (%.1f%%)", id, r.ByInstance[id], 100*r.Share(id)))
	}
	s := fmt.Sprintf("%d requests in %s: %d ok, %d non-2xx, %d errors; p50 %s p99 %s; %s",
		r.Sent, r.Elapsed.Round(time.Millisecond), r.OK, r.Non2xx, r.Errors,
		r.Latency(0.5).Round(10*time.Microsecond), r.Latency(0.99).Round(10*time.Microsecond), strings.Join(dist, " "))
	if len(r.FirstFailures) > 0 {
		s += "; first failures: " + strings.Join(r.FirstFailures, "; ")
	}
	return s
}

// Load is a running load generator. It stops by itself at its bounds.
type Load struct {
	o      LoadOptions
	cancel context.CancelFunc
	done   chan struct{} // closed when every worker has returned
	start  time.Time

	mu  sync.Mutex // guards res
	res LoadResult
}

// StartLoad starts a bounded load run in the background; Wait or Stop
// collect its result. The run is stopped at test cleanup at the latest.
func StartLoad(t testing.TB, o LoadOptions) *Load {
	t.Helper()
	if o.Requests <= 0 && o.Duration <= 0 {
		t.Fatalf("harness: load needs a Requests or Duration bound")
	}
	if o.Duration <= 0 || o.Duration > MaxLoadDuration {
		o.Duration = MaxLoadDuration
	}
	o.Concurrency = max(o.Concurrency, 1)
	if o.Method == "" {
		o.Method = http.MethodGet
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Duration)
	l := &Load{o: o, cancel: cancel, done: make(chan struct{}), start: time.Now(),
		res: LoadResult{ByInstance: map[string]int{}, LastSeen: map[string]time.Time{}}}
	var next counter
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Add(1)
		go func() { defer wg.Done(); l.worker(ctx, &next) }()
	}
	go func() { wg.Wait(); close(l.done) }()
	t.Cleanup(func() { l.Stop() })
	return l
}

// RunLoad runs a bounded load to completion and returns its result.
func RunLoad(t testing.TB, o LoadOptions) *LoadResult {
	t.Helper()
	return StartLoad(t, o).Wait()
}

// Wait waits for the run to reach its bound and returns the result.
func (l *Load) Wait() *LoadResult {
	<-l.done
	l.cancel()
	return l.result()
}

// Stop ends the run now (in-flight requests finish) and returns the
// result. Safe to call more than once.
func (l *Load) Stop() *LoadResult {
	l.cancel()
	return l.Wait()
}

// Snapshot returns the result so far without stopping the run.
func (l *Load) Snapshot() *LoadResult { return l.result() }

func (l *Load) result() *LoadResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.res
	r.ByInstance = maps.Clone(l.res.ByInstance)
	r.LastSeen = maps.Clone(l.res.LastSeen)
	r.FirstFailures = slices.Clone(l.res.FirstFailures)
	r.latencies = slices.Clone(l.res.latencies)
	slices.Sort(r.latencies)
	if r.Elapsed == 0 {
		r.Elapsed = time.Since(l.start)
	}
	return &r
}

// counter hands out request numbers up to the count bound.
type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) take(limit int) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if limit > 0 && c.n >= limit {
		return 0, false
	}
	c.n++
	return c.n - 1, true
}

func (l *Load) worker(ctx context.Context, next *counter) {
	client := NewHTTPClient(l.o.LocalIP)
	defer client.CloseIdleConnections()
	for ctx.Err() == nil {
		n, ok := next.take(l.o.Requests)
		if !ok {
			break
		}
		l.one(ctx, client, n)
		if l.o.Pace > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(l.o.Pace):
			}
		}
	}
	l.mu.Lock()
	if l.res.Elapsed == 0 && (l.o.Requests > 0 || ctx.Err() != nil) {
		// The first worker to finish marks the end of the run.
		l.res.Elapsed = time.Since(l.start)
	}
	l.mu.Unlock()
}

// one sends request n; a request cut short by the end of the run (not
// by its own timeout) is not counted.
func (l *Load) one(ctx context.Context, client *http.Client, n int) {
	var hdr http.Header
	if l.o.Header != nil {
		hdr = l.o.Header(n)
	}
	start := time.Now()
	instance, status, body, err := fetch(ctx, client, l.o.Method, l.o.URL, l.o.Host, hdr, l.o.Timeout)
	took := time.Since(start)
	if err != nil && ctx.Err() != nil {
		return
	}
	if l.o.Observe != nil {
		l.o.Observe(n, instance, status, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := &l.res
	r.Sent++
	r.latencies = append(r.latencies, took)
	switch {
	case err != nil:
		r.Errors++
		r.addFailure(fmt.Sprintf("#%d at +%s: %v", n, start.Sub(l.start).Round(time.Millisecond), err))
	case status < 200 || status > 299:
		r.Non2xx++
		r.addFailure(fmt.Sprintf("#%d at +%s: status %d from %q: %.100q", n, start.Sub(l.start).Round(time.Millisecond), status, instance, body))
	default:
		r.OK++
		r.ByInstance[instance]++
		r.LastSeen[instance] = time.Now()
	}
}

func (r *LoadResult) addFailure(s string) {
	if len(r.FirstFailures) < 10 {
		r.FirstFailures = append(r.FirstFailures, s)
	}
}

// NewHTTPClient returns a keep-alive client with one connection per host,
// its connections bound to localIP when set. Close it with
// CloseIdleConnections.
func NewHTTPClient(localIP string) *http.Client {
	d := &net.Dialer{Timeout: 2 * time.Second}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	return &http.Client{Transport: &http.Transport{
		DialContext: d.DialContext, MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1,
		IdleConnTimeout: 30 * time.Second, DisableCompression: true,
	}}
}

// Fetch sends one request and returns the x-instance that answered, the
// status and any transport error. The body is read to the end so the
// connection is reused.
func Fetch(ctx context.Context, client *http.Client, method, url, host string, hdr http.Header, timeout time.Duration) (instance string, status int, err error) {
	instance, status, _, err = fetch(ctx, client, method, url, host, hdr, timeout)
	return instance, status, err
}

// fetch is Fetch that also returns the body of a non-2xx answer.
func fetch(ctx context.Context, client *http.Client, method, url, host string, hdr http.Header, timeout time.Duration) (instance string, status int, body []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return "", 0, nil, err
	}
	if host != "" {
		req.Host = host
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, nil, err
	}
	defer resp.Body.Close()
	w := io.Discard
	var b strings.Builder
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		w = &b
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return "", 0, nil, err
	}
	return resp.Header.Get("X-Instance"), resp.StatusCode, []byte(b.String()), nil
}
