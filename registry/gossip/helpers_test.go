package gossip_test

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-mesh/shoal/registry/gossip"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// memberlist's Shutdown does not wait for its probe's TCP fallback
		// goroutine (state.go probeNode), which ends at the probe deadline;
		// goleak's retries usually outlast it, this covers a slow machine.
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).sendPingAndWaitForAck"),
		// Likewise the probe itself (state.go probeNode) waits for its ack
		// channel until the probe deadline after Shutdown; seen outlasting
		// goleak's retries under -race on a loaded 2-core machine.
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
	)
}

const (
	defaultTestTimeout      = 20 * time.Second
	defaultTestShortTimeout = 10 * time.Millisecond
	pollInterval            = 5 * time.Millisecond
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func testLogger() *slog.Logger {
	if os.Getenv("SHOAL_GOSSIP_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func instKey(i int) gossip.InstanceKey {
	return gossip.InstanceKey{Service: "orders", ID: fmt.Sprintf("orders-%d", i)}
}

// startMember starts a sidecar member fronting instKey(i), healthy, on
// 127.0.0.1 with an ephemeral port, and closes it at cleanup.
func startMember(t testing.TB, i int, mutate func(*gossip.Config)) *gossip.Member {
	t.Helper()
	cfg := gossip.DefaultConfig(fmt.Sprintf("node-%d", i), gossip.RoleSidecar)
	cfg.Instances = []gossip.InstanceHealth{{InstanceKey: instKey(i), Healthy: true}}
	cfg.Keys = [][]byte{testKey}
	cfg.Logger = testLogger()
	if mutate != nil {
		mutate(&cfg)
	}
	m, err := gossip.New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.Name, err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// startCluster starts n members, joins them through the first and waits
// until every member sees n alive members.
func startCluster(t testing.TB, n int, mutate func(*gossip.Config)) []*gossip.Member {
	t.Helper()
	ms := make([]*gossip.Member, n)
	for i := range ms {
		ms[i] = startMember(t, i, mutate)
		if i > 0 {
			if _, err := ms[i].Join([]string{ms[0].Addr()}); err != nil {
				t.Fatalf("join %d: %v", i, err)
			}
		}
	}
	waitFor(t, defaultTestTimeout, "cluster converged", func() bool {
		for _, m := range ms {
			if countState(m, gossip.MemberAlive) != n {
				return false
			}
		}
		return true
	})
	return ms
}

func countState(m *gossip.Member, s gossip.MemberState) int {
	n := 0
	for _, p := range m.Peers() {
		if p.State == s {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds, failing the test after timeout, and
// returns how long it took.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(pollInterval) // poll interval of a loop with a deadline
	}
	return time.Since(start)
}

// everyone reports whether status(key) on every member in ms satisfies ok.
func everyone(ms []*gossip.Member, key gossip.InstanceKey, ok func(gossip.Status) bool) bool {
	for _, m := range ms {
		if s, known := m.Health(key); !known || !ok(s) {
			return false
		}
	}
	return true
}

func is(want gossip.Status) func(gossip.Status) bool {
	return func(s gossip.Status) bool { return s == want }
}

// recorder collects events from a subscription.
type recorder struct {
	mu     sync.Mutex
	events []gossip.Event
	first  map[string]map[gossip.MemberState]time.Time // node → state → first seen
}

func record(t testing.TB, m *gossip.Member) *recorder {
	r := &recorder{first: map[string]map[gossip.MemberState]time.Time{}}
	cancel := m.Subscribe(func(ev gossip.Event) {
		now := time.Now()
		r.mu.Lock()
		defer r.mu.Unlock()
		r.events = append(r.events, ev)
		if r.first[ev.Name] == nil {
			r.first[ev.Name] = map[gossip.MemberState]time.Time{}
		}
		if _, ok := r.first[ev.Name][ev.State]; !ok {
			r.first[ev.Name][ev.State] = now
		}
	})
	t.Cleanup(cancel)
	return r
}

// firstSeen returns when node was first reported in state s.
func (r *recorder) firstSeen(node string, s gossip.MemberState) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.first[node][s]
	return at, ok
}

// states returns the states reported for node, in order.
func (r *recorder) states(node string) []gossip.MemberState {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []gossip.MemberState
	for _, ev := range r.events {
		if ev.Name == node && (len(out) == 0 || out[len(out)-1] != ev.State) {
			out = append(out, ev.State)
		}
	}
	return out
}

func (r *recorder) anyState(s gossip.MemberState) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.events, func(ev gossip.Event) bool { return ev.State == s })
}
