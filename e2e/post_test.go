package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// requestLog is a Node.js preload (NODE_OPTIONS=--require) for the example
// service: it appends "recv ID" when a request with an x-request-id header
// arrives and "done ID" once its answer is written, synchronously (the
// lines survive a kill -9), to the file $SHOAL_E2E_REQUEST_LOG.
const requestLog = `'use strict';
const fs = require('node:fs');
const http = require('node:http');
const fd = fs.openSync(process.env.SHOAL_E2E_REQUEST_LOG, 'a');
const createServer = http.createServer;
http.createServer = function (...args) {
  const server = createServer.apply(this, args);
  server.prependListener('request', (req, res) => {
    const id = req.headers['x-request-id'];
    if (!id) return;
    fs.writeSync(fd, 'recv ' + id + '\n');
    res.on('finish', () => fs.writeSync(fd, 'done ' + id + '\n'));
  });
  return server;
};
`

// Issue 6: kill -9 one of three instances under steady POST and GET load,
// on a route without a retry policy (proxies then retry connect failures
// only, and never resend a POST that may have reached an app). Every
// instance answers after 20 ms, so some requests are in flight on the
// victim when it dies; each instance logs the x-request-id of every
// request it receives and answers. The numbers: GETs 0 errors; every
// failed POST had been received, and not answered, by the killed instance.
func TestPostKillOneOfThreeUnderLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	preload := filepath.Join(dir, "request-log.js")
	if err := os.WriteFile(preload, []byte(requestLog), 0o644); err != nil {
		t.Fatal(err)
	}
	logOf := func(i int) string { return filepath.Join(dir, fmt.Sprintf("requests-%d.log", i)) }
	m := harness.StartMesh(t, 3, harness.MeshOptions{AppEnv: func(i int) []string {
		return []string{"DELAY_MS=20", "NODE_OPTIONS=--require " + preload, "SHOAL_E2E_REQUEST_LOG=" + logOf(i)}
	}})
	gets := steadyLoad(t, m.URL(), false, 0)
	posts := startPosts(t, m.URL(), 4)
	waitRequests(t, gets, 300)
	posts.waitSent(t, 300)

	const victim = 0
	killedAt := time.Now()
	m.KillApp(victim)
	exited := time.Since(killedAt) // its sockets are closed by now
	out := m.WaitRoutable(t, m.Client, "web", 1, 2)
	waitRequests(t, gets, 600)
	posts.waitSent(t, 600)
	g := gets.Stop()
	p := posts.stop()

	recv, done := readRequestLog(t, logOf(victim))
	var inFlight []string // POSTs the victim received and never answered
	for id := range recv {
		if strings.HasPrefix(id, "post-") && !done[id] {
			inFlight = append(inFlight, id)
		}
	}
	slices.Sort(inFlight)
	var failed, unexplained []string
	for _, r := range p.results {
		if r.ok() {
			continue
		}
		failed = append(failed, r.id)
		// In flight on the victim: it read the request and never answered,
		// or the request was sent while the process was being killed (the
		// kernel may have taken it before the app could log it).
		sentWhileDying := r.start.Before(killedAt.Add(exited)) && r.start.Add(r.took).After(killedAt)
		if recv[r.id] && !done[r.id] || !recv[r.id] && sentWhileDying {
			continue
		}
		unexplained = append(unexplained, fmt.Sprintf("%s sent at %+.1fms (kill -9 at 0, exit at %.1fms), took %s, received by the victim: %v, answered by it: %v: %s",
			r.id, ms(r.start.Sub(killedAt)), ms(exited), r.took.Round(100*time.Microsecond), recv[r.id], done[r.id], r.failure()))
	}
	slices.Sort(failed)
	t.Logf("kill -9 of %s: exited %s and out of rotation %s after; POSTs: %d sent, %d failed %v, %d were in flight on it %v; GETs: %s",
		m.ID(victim), exited.Round(time.Millisecond), out.Round(time.Millisecond), len(p.results), len(failed), failed, len(inFlight), inFlight, g)
	if len(unexplained) > 0 {
		t.Errorf("%d POSTs failed that were not in flight on the killed instance:\n%s", len(unexplained), strings.Join(unexplained, "\n"))
	}
	if g.Failures() != 0 {
		t.Errorf("GET failures = %d, want 0", g.Failures())
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// readRequestLog reads a requestLog file: the ids received and answered.
func readRequestLog(t *testing.T, file string) (recv, done map[string]bool) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("request log: %v", err)
	}
	recv, done = map[string]bool{}, map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		switch verb, id, _ := strings.Cut(line, " "); verb {
		case "recv":
			recv[id] = true
		case "done":
			done[id] = true
		}
	}
	return recv, done
}

// postResult is one POST of a postLoad.
type postResult struct {
	id       string
	start    time.Time
	took     time.Duration
	status   int
	instance string
	err      error
}

func (r postResult) ok() bool { return r.err == nil && r.status >= 200 && r.status <= 299 }

func (r postResult) failure() string {
	if r.err != nil {
		return r.err.Error()
	}
	return fmt.Sprintf("status %d from %q", r.status, r.instance)
}

// postLoad sends POSTs with a small JSON body and an x-request-id
// ("post-N") from keep-alive workers, back to back, until stopped (the
// harness load generator sends no bodies).
type postLoad struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when every worker has returned

	// mu guards results and n.
	mu      sync.Mutex
	results []postResult
	n       int
}

func startPosts(t *testing.T, url string, workers int) *postLoad {
	ctx, cancel := context.WithTimeout(context.Background(), harness.MaxLoadDuration)
	pl := &postLoad{cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() { defer wg.Done(); pl.worker(ctx, url) }()
	}
	go func() { wg.Wait(); close(pl.done) }()
	t.Cleanup(func() { pl.stop() })
	return pl
}

func (pl *postLoad) worker(ctx context.Context, url string) {
	client := harness.NewHTTPClient("")
	defer client.CloseIdleConnections()
	for ctx.Err() == nil {
		pl.mu.Lock()
		id := fmt.Sprintf("post-%d", pl.n)
		pl.n++
		pl.mu.Unlock()
		r := postOne(ctx, client, url, id)
		if r.err != nil && ctx.Err() != nil {
			return // cut short by the end of the run
		}
		pl.mu.Lock()
		pl.results = append(pl.results, r)
		pl.mu.Unlock()
	}
}

func postOne(ctx context.Context, client *http.Client, url, id string) postResult {
	r := postResult{id: id, start: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	body := fmt.Sprintf(`{"order":%q,"qty":1}`, id)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/orders", bytes.NewReader([]byte(body)))
	if err != nil {
		r.err = err // a test bug: the URL is ours
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", id)
	resp, err := client.Do(req)
	if err != nil {
		r.err = err
		r.took = time.Since(r.start)
		return r
	}
	defer resp.Body.Close()
	_, r.err = io.Copy(io.Discard, resp.Body)
	r.status, r.instance = resp.StatusCode, resp.Header.Get("X-Instance")
	r.took = time.Since(r.start)
	return r
}

// waitSent waits until n more POSTs have been answered or failed.
func (pl *postLoad) waitSent(t *testing.T, n int) {
	t.Helper()
	target := pl.sent() + n
	harness.Eventually(t, harness.DefaultTimeout, fmt.Sprintf("%d more POSTs", n), func() bool { return pl.sent() >= target })
}

func (pl *postLoad) sent() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return len(pl.results)
}

// stop ends the run, waits for the workers and returns the load; safe to
// call more than once.
func (pl *postLoad) stop() *postLoad {
	pl.cancel()
	<-pl.done
	return pl
}
