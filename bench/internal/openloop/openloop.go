// Package openloop is an open-loop HTTP load generator (wrk2's model): it
// sends requests on a constant-rate schedule whatever the server does, and
// measures each latency from the request's intended send time, not from
// when it was actually sent. A closed-loop generator (wrk, ab) waits for a
// slow answer before it sends the next request, so it sends less exactly
// when the server is slow and hides the wait of the requests it did not
// send (coordinated omission); this one counts it.
//
// It also records, per time bucket, how many responses each backend
// answered (from a response header naming it), for a share-over-time
// chart. Closed measures the capacity (completed requests per second) with
// a fixed number of concurrent connections.
package openloop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Config configures one open-loop run. Zero values are documented per
// field.
type Config struct {
	// URL is requested with GET. Required.
	URL string
	// Rate is the requests per second of the schedule. Required.
	Rate float64
	// Duration bounds the schedule; requests still in flight at its end get
	// up to Timeout more. Required.
	Duration time.Duration
	// Timeout bounds one request from its intended send time; an answer
	// later than that is an error. Zero means 5s.
	Timeout time.Duration
	// MaxConns bounds the connections (a request with none free waits, and
	// the wait counts in its latency). Zero means 2048.
	MaxConns int
	// Bucket is the width of the share-over-time buckets. Zero means 1s.
	Bucket time.Duration
	// BackendHeader names the response header that says which backend
	// answered. Empty means "X-Backend".
	BackendHeader string
	// KeepSamples keeps every answered request in Result.Samples.
	KeepSamples bool
}

func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.MaxConns == 0 {
		c.MaxConns = 2048
	}
	if c.Bucket == 0 {
		c.Bucket = time.Second
	}
	if c.BackendHeader == "" {
		c.BackendHeader = "X-Backend"
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.URL == "":
		return errors.New("openloop: URL is required")
	case !(c.Rate > 0) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("openloop: rate %v must be positive", c.Rate)
	case c.Duration <= 0:
		return fmt.Errorf("openloop: duration %v must be positive", c.Duration)
	}
	return nil
}

// Result is what one run measured.
type Result struct {
	Sent int64 `json:"sent"` // requests scheduled (and sent)
	OK   int64 `json:"ok"`   // 2xx answers within Timeout
	// Errors counts failed requests by kind: "status 503", "timeout",
	// "transport", "no backend header".
	Errors map[string]int64 `json:"errors,omitempty"`
	// Latencies of the OK requests from their intended send time, sorted.
	Latencies []time.Duration `json:"-"`
	// Backends counts OK answers per backend.
	Backends map[string]int64 `json:"backends"`
	// Buckets counts OK answers per backend per Bucket of intended send
	// time, from the start of the schedule.
	Buckets []map[string]int64 `json:"buckets"`
	// Samples are the OK requests in the order they completed, with
	// Config.KeepSamples.
	Samples []Sample `json:"-"`
	// Late is the largest delay between a request's intended send time and
	// the moment the generator launched it: near zero unless the generator
	// itself could not keep up (then the run says little).
	Late time.Duration `json:"late_ns"`
}

// Sample is one answered request: when it was due (from the start of the
// schedule), how long it took from then, and which backend answered.
type Sample struct {
	Intended, Latency time.Duration
	Backend           string
}

// ErrorCount is the total of Errors.
func (r *Result) ErrorCount() int64 {
	var n int64
	for _, v := range r.Errors {
		n += v
	}
	return n
}

// Quantile returns the q-quantile (0..1) of the OK latencies, by the
// nearest-rank method, or 0 with none.
func (r *Result) Quantile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(r.Latencies)))) - 1
	return r.Latencies[min(max(i, 0), len(r.Latencies)-1)]
}

// recorder collects the outcomes of a run; safe for concurrent use.
type recorder struct {
	bucket  time.Duration
	samples bool
	// mu guards everything below.
	mu   sync.Mutex
	res  Result
	late time.Duration
}

func (rec *recorder) ok(intended time.Duration, lat time.Duration, backend string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.res.OK++
	rec.res.Latencies = append(rec.res.Latencies, lat)
	if rec.samples {
		rec.res.Samples = append(rec.res.Samples, Sample{intended, lat, backend})
	}
	rec.res.Backends[backend]++
	b := int(intended / rec.bucket)
	for len(rec.res.Buckets) <= b {
		rec.res.Buckets = append(rec.res.Buckets, map[string]int64{})
	}
	rec.res.Buckets[b][backend]++
}

func (rec *recorder) fail(kind string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.res.Errors[kind]++
}

func newClient(maxConns int, timeout time.Duration) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		MaxConnsPerHost:     maxConns,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}}
}

// Run sends cfg.Rate requests a second for cfg.Duration and returns what
// they measured. It returns early with ctx's error if ctx ends.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	client := newClient(cfg.MaxConns, cfg.Timeout)
	defer client.CloseIdleConnections()
	rec := &recorder{bucket: cfg.Bucket, samples: cfg.KeepSamples, res: Result{Errors: map[string]int64{}, Backends: map[string]int64{}}}
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	total := int64(cfg.Duration / interval)
	var wg sync.WaitGroup
	start := time.Now()
	var next int64
	for next < total {
		// Launch every request whose intended time has come, then sleep
		// until the next one's: a late wake-up sends a burst, as the
		// schedule says, instead of shifting it.
		elapsed := time.Since(start)
		for ; next < total && time.Duration(next)*interval <= elapsed; next++ {
			intended := time.Duration(next) * interval
			rec.late = max(rec.late, elapsed-intended)
			wg.Add(1)
			go func() {
				defer wg.Done()
				one(ctx, client, cfg, rec, start, intended)
			}()
		}
		if next >= total {
			break
		}
		t := time.NewTimer(time.Duration(next)*interval - time.Since(start))
		select {
		case <-ctx.Done():
			t.Stop()
			wg.Wait()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	wg.Wait()
	res := rec.res
	res.Sent = total
	res.Late = rec.late
	slices.Sort(res.Latencies)
	return &res, ctx.Err()
}

// one sends the request intended at start+intended and records it.
func one(ctx context.Context, client *http.Client, cfg Config, rec *recorder, start time.Time, intended time.Duration) {
	ctx, cancel := context.WithDeadline(ctx, start.Add(intended+cfg.Timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL, nil)
	if err != nil {
		rec.fail("request")
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			rec.fail("timeout")
		} else {
			rec.fail("transport")
		}
		return
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	lat := time.Since(start) - intended
	switch {
	case err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		rec.fail("timeout")
	case err != nil:
		rec.fail("transport")
	case resp.StatusCode/100 != 2:
		rec.fail(fmt.Sprintf("status %d", resp.StatusCode))
	case resp.Header.Get(cfg.BackendHeader) == "":
		rec.fail("no backend header")
	default:
		rec.ok(intended, lat, resp.Header.Get(cfg.BackendHeader))
	}
}

// Closed runs conns concurrent request loops against url for d and returns
// the completed (2xx) requests per second and the failures: the capacity
// of whatever answers there, under a closed loop.
func Closed(ctx context.Context, url string, conns int, d time.Duration) (rps float64, failures int64, err error) {
	if conns < 1 || d <= 0 {
		return 0, 0, fmt.Errorf("openloop: closed loop needs conns ≥ 1 and a positive duration (got %d, %v)", conns, d)
	}
	client := newClient(conns, 5*time.Second)
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var done int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ok, bad int64
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						bad++
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					ok++
				} else {
					bad++
				}
			}
			mu.Lock()
			done += ok
			failures += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	return float64(done) / time.Since(start).Seconds(), failures, nil
}
