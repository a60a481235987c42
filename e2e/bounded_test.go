package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// Issue 18, item 2: consistent hashing with bounded loads through a real
// sidecar. A ring hash rule with balance_factor 125 keeps every key on its
// instance while the load is under the bound; a hot key sent by many
// concurrent clients spills over so its instance stays near 1.25 x the
// average; when one of three instances leaves, only its keys move.
func TestBoundedLoadHashing(t *testing.T) {
	t.Parallel()
	// Slow answers, so concurrent requests are in flight together.
	m := harness.StartMesh(t, 3, harness.MeshOptions{AppEnv: func(int) []string { return []string{"DELAY_MS=40"} }})
	m.ApplyRoute(t, strategyRoute("ring_hash", "header: x-user")+"    balance_factor: 125\n",
		map[string][]int{"web/ring_hash/balance-125": nil})
	c := harness.NewHTTPClient("")
	defer c.CloseIdleConnections()

	// Under the bound (one request at a time): every key is sticky.
	const keys = 90
	home := map[string]string{}
	for pass := range 2 {
		for k := range keys {
			key := fmt.Sprintf("user-%d", k)
			id := keyedGet(t, c, m.URL(), key)
			if pass == 0 {
				home[key] = id
			} else if id != home[key] {
				t.Fatalf("%s went to %s, then %s: under the bound a key must stay", key, home[key], id)
			}
		}
	}

	// A hot key from 12 concurrent clients: without a bound one instance
	// would take every request; with 125 its in-flight share stays near
	// ceil(1.25 x 12 / 3) = 5 of 12.
	hotHome := home["user-7"]
	r := harness.RunLoad(t, harness.LoadOptions{URL: m.URL(), Concurrency: 12, Requests: 1200, Duration: time.Minute,
		Header: func(int) http.Header { return http.Header{"X-User": {"user-7"}} }})
	t.Logf("hot key user-7 (home %s) from 12 clients: %s", hotHome, r)
	if r.Failures() != 0 {
		t.Errorf("hot key: %d failures, want 0", r.Failures())
	}
	if len(r.ByInstance) < 3 {
		t.Errorf("hot key reached %d instances, want all 3 (spilled over past the bound)", len(r.ByInstance))
	}
	// The bound is on requests in flight; the share of requests follows it.
	// 5/12 = 42 %; allow for requests that finish between picks.
	if s := r.Share(hotHome); s < 0.3 {
		t.Errorf("home instance %s took %.1f%% of the hot key, want about 5/12 (42%%): filled up to the bound first", hotHome, 100*s)
	}
	for id := range r.ByInstance {
		if s := r.Share(id); s > 0.5 {
			t.Errorf("%s took %.1f%% of the hot key, want at most about 5/12 (42%%): 1.25 x the average in flight", id, 100*s)
		}
	}

	// One of three leaves: only its keys move.
	gone := m.ID(2)
	if !m.Sidecars[2].Term(15 * time.Second) {
		t.Fatalf("sidecar of %s did not exit", gone)
	}
	m.WaitRoutable(t, m.Client, "web/ring_hash/balance-125", 0, 1)
	moved, stayed := 0, 0
	for k := range keys {
		key := fmt.Sprintf("user-%d", k)
		id := keyedGet(t, c, m.URL(), key)
		switch {
		case home[key] == gone:
			moved++
		case id != home[key]:
			t.Errorf("%s moved from %s to %s although %s was the one to leave", key, home[key], id, gone)
		default:
			stayed++
		}
	}
	t.Logf("after %s left: %d of %d keys moved (its own), %d stayed", gone, moved, keys, stayed)
}
