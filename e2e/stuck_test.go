package e2e

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// Issue 17: one of four Node.js instances blocks its event loop for good
// (while(true){}: it still accepts connections and answers nothing) under
// GET and POST load through a client sidecar with no route. GETs lose
// under 1 % and none once the stall is detected (at most 2 s, asserted
// with 1 s to spare for a loaded machine); nothing is answered 503 (the
// stuck instance's hung requests used to fill the service's in-flight
// limit); POSTs fail only with 504 (those in flight on the stuck
// instance), by the same bound.
func TestStuckInstanceUnderLoad(t *testing.T) {
	t.Parallel()
	const stuck = 3
	m := harness.StartMesh(t, 4, harness.MeshOptions{AppEnv: func(i int) []string {
		if i == stuck {
			return []string{"BLOCK_AFTER=1500"}
		}
		return nil
	}})
	type failure struct {
		at     time.Time
		status int
		err    error
	}
	var mu sync.Mutex
	var getFails, postFails []failure
	var blockedAt time.Time // the stuck instance's last answer
	observe := func(fails *[]failure) func(int, string, int, error) {
		return func(_ int, instance string, status int, err error) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if instance == m.ID(stuck) && now.After(blockedAt) {
				blockedAt = now
			}
			if err != nil || status < 200 || status > 299 {
				*fails = append(*fails, failure{now, status, err})
			}
		}
	}
	posts := harness.StartLoad(t, harness.LoadOptions{URL: m.URL(), Method: "POST", Concurrency: 4,
		Pace: 10 * time.Millisecond, Duration: 15 * time.Second, Observe: observe(&postFails)})
	gets := harness.RunLoad(t, harness.LoadOptions{URL: m.URL(), Concurrency: 64,
		Pace: 32 * time.Millisecond, Duration: 15 * time.Second, Observe: observe(&getFails)})
	postRes := posts.Wait()
	t.Logf("GET:  %s", gets)
	t.Logf("POST: %s", postRes)

	mu.Lock()
	defer mu.Unlock()
	if blockedAt.IsZero() || gets.ByInstance[m.ID(stuck)] == 0 {
		t.Fatalf("the stuck instance never answered: %s", gets)
	}
	if !strings.Contains(m.Apps[stuck].Output(), "blocking the event loop") {
		t.Fatalf("the stuck instance did not block (it answered fewer than BLOCK_AFTER requests); output:\n%s", m.Apps[stuck].Output())
	}
	// The stall threshold is at most 2 s; a failure may be answered a
	// moment after it on a loaded machine (a POST's 504 came at +2.042 s
	// with two suites side by side), so the bound allows one more second.
	// What is asserted is that failures stop, not their exact time.
	after := blockedAt.Add(3 * time.Second)
	late := 0
	for _, f := range getFails {
		if f.at.After(after) {
			late++
		}
		if f.status == 503 {
			t.Errorf("a GET was answered 503 at +%s", f.at.Sub(blockedAt).Round(time.Millisecond))
		}
	}
	t.Logf("GET failures: %d of %d (%.2f%%), %d later than 3 s after the block", len(getFails), gets.Sent,
		100*float64(len(getFails))/float64(max(1, gets.Sent)), late)
	if 100*len(getFails) >= gets.Sent {
		t.Errorf("GETs lost: %d of %d, want under 1 %%", len(getFails), gets.Sent)
	}
	if late > 0 {
		t.Errorf("%d GETs failed later than 3 s after the block", late)
	}
	for _, f := range postFails {
		if f.status != 504 || f.at.After(after) {
			t.Errorf("POST failed with %d (%v) at +%s; want only 504s of POSTs in flight on the stuck instance, within the stall threshold (+1 s)",
				f.status, f.err, f.at.Sub(blockedAt).Round(time.Millisecond))
		}
	}
	t.Logf("POST failures: %d of %d", len(postFails), postRes.Sent)

	metrics := string(adminGet(t, http.DefaultClient, "http://"+m.Client.Admin+"/metrics"))
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "shoal_sidecar_endpoint_stalls_total") || strings.HasPrefix(line, `shoal_sidecar_requests_total{cluster="web",code="5`) {
			t.Logf("client sidecar: %s", line)
		}
	}
	if !strings.Contains(metrics, `shoal_sidecar_endpoint_stalls_total{cluster="web"}`) {
		t.Errorf("the client sidecar counted no stall")
	}
}

// Issue 17: one of four instances paused for 5 s (SIGSTOP) under GET load
// through a client sidecar with no route: no request fails, and none
// waits for the whole pause (the stall is detected within 1–2 s and the
// GETs waiting on the paused instance go to another one).
func TestPausedInstanceUnderLoad(t *testing.T) {
	t.Parallel()
	m := harness.StartMesh(t, 4, harness.MeshOptions{})
	load := harness.StartLoad(t, harness.LoadOptions{URL: m.URL(), Concurrency: 32, Pace: 16 * time.Millisecond, Duration: 20 * time.Second})
	waitRequests(t, load, 2000)
	const paused = 3
	m.Apps[paused].Pause()
	<-time.After(5 * time.Second) // the pause under test, not a synchronisation
	m.Apps[paused].Resume()
	waitRequests(t, load, 2000)
	res := load.Stop()
	t.Logf("GET: %s; max %s", res, res.Latency(1).Round(time.Millisecond))
	if res.Failures() > 0 {
		t.Errorf("%d of %d requests failed", res.Failures(), res.Sent)
	}
	// Without stall detection the requests on the paused instance waited
	// for the whole pause (p99 4.6 s measured); the bound is generous
	// against CPU stalls on a loaded machine.
	if worst := res.Latency(1); worst > 4*time.Second {
		t.Errorf("the slowest request took %s; want well under the 5 s pause", worst)
	}
}
