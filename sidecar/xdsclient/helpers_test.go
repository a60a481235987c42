package xdsclient

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/backoff"
)

const (
	defaultTestTimeout      = 10 * time.Second
	defaultTestShortTimeout = 10 * time.Millisecond
)

// recorder collects delivered snapshots.
type recorder struct {
	// changed has capacity 1 and signals a delivery.
	changed chan struct{}

	// mu guards snaps.
	mu    sync.Mutex
	snaps []*Snapshot
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) onUpdate(s *Snapshot) {
	r.mu.Lock()
	r.snaps = append(r.snaps, s)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// last returns the last snapshot (nil if none) and the delivery count.
func (r *recorder) last() (*Snapshot, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.snaps) == 0 {
		return nil, 0
	}
	return r.snaps[len(r.snaps)-1], len(r.snaps)
}

// waitFor waits until the last delivered snapshot satisfies ok.
func (r *recorder) waitFor(t *testing.T, what string, ok func(*Snapshot) bool) *Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()
	for {
		if s, _ := r.last(); s != nil && ok(s) {
			return s
		}
		select {
		case <-r.changed:
		case <-ctx.Done():
			s, n := r.last()
			t.Fatalf("timed out waiting for %s; %d deliveries, last %+v", what, n, s)
		}
	}
}

// pollUntil polls cond until it holds or the test timeout passes.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// testConfig returns a Config for addr with fast timings.
func testConfig(addr string, mode Mode) Config {
	return Config{
		Server:              addr,
		Node:                NewNode(NodeInfo{ID: testNodeID, Cluster: "orders", Service: "orders", InstanceID: "orders-1", Zone: "local", Version: "test"}),
		Mode:                mode,
		Backoff:             backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 100 * time.Millisecond},
		SettleTimeout:       200 * time.Millisecond,
		InitialFetchTimeout: 5 * time.Second,
		NACKRetryDelay:      200 * time.Millisecond,
		Logger:              slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// startClient runs a client with cfg (OnUpdate set to a recorder) until
// the test ends; stop ends it earlier and waits for Run to return.
func startClient(t *testing.T, cfg Config) (c *Client, r *recorder, stop func()) {
	t.Helper()
	r = newRecorder()
	cfg.OnUpdate = r.onUpdate
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return c, r, stop
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}
