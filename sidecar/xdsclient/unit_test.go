package xdsclient

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/shoal-mesh/shoal/internal/metric"
	discoveryv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/service/discovery/v3"
)

func TestBackoffDelay(t *testing.T) {
	tests := []struct {
		name    string
		retries int
		rand    float64
		want    time.Duration
	}{
		{name: "first retry waits the base delay", retries: 0, rand: 0.5, want: time.Second},
		{name: "second retry multiplies by 1.6", retries: 1, rand: 0.5, want: 1600 * time.Millisecond},
		{name: "third retry multiplies again", retries: 2, rand: 0.5, want: 2560 * time.Millisecond},
		{name: "jitter lowers by up to 20 percent", retries: 0, rand: 0, want: 800 * time.Millisecond},
		{name: "jitter raises by up to 20 percent", retries: 0, rand: 1, want: 1200 * time.Millisecond},
		{name: "delay is capped at 10s", retries: 50, rand: 0.5, want: 10 * time.Second},
	}
	defer func(f func() float64) { randFloat64 = f }(randFloat64)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			randFloat64 = func() float64 { return tc.rand }
			got := backoffDelay(DefaultBackoff, tc.retries)
			if diff := got - tc.want; diff < -time.Millisecond || diff > time.Millisecond {
				t.Errorf("backoffDelay(%d) = %v, want %v", tc.retries, got, tc.want)
			}
		})
	}
}

func TestNotifierCoalescesToNewest(t *testing.T) {
	// block holds the first delivery until the others are queued.
	block := make(chan struct{})
	var mu sync.Mutex
	var got []*Snapshot
	coalesced := 0
	n := newNotifier(func(s *Snapshot) {
		mu.Lock()
		got = append(got, s)
		first := len(got) == 1
		mu.Unlock()
		if first {
			<-block
		}
	}, func() { coalesced++ }) // push is called from this goroutine only
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { n.run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	s1, s2, s3, s4 := &Snapshot{}, &Snapshot{}, &Snapshot{}, &Snapshot{}
	n.push(s1)
	pollUntil(t, "first delivery", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	n.push(s2)
	n.push(s3)
	n.push(s4) // push never blocks while OnUpdate does
	close(block)
	pollUntil(t, "newest delivery", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 2 })
	mu.Lock()
	defer mu.Unlock()
	if got[0] != s1 || got[1] != s4 || coalesced != 2 {
		t.Errorf("delivered %p, coalesced %d; want s1 %p then s4 %p, coalesced 2", got, coalesced, s1, s4)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	ok := func(*Snapshot) {}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "requires a server", cfg: Config{Node: NewNode(NodeInfo{ID: "a"}), OnUpdate: ok}, wantErr: "Server"},
		{name: "requires a node id", cfg: Config{Server: "x", OnUpdate: ok}, wantErr: "Node.Id"},
		{name: "requires OnUpdate", cfg: Config{Server: "x", Node: NewNode(NodeInfo{ID: "a"})}, wantErr: "OnUpdate"},
		{name: "fills defaults", cfg: Config{Server: "x", Node: NewNode(NodeInfo{ID: "a"}), OnUpdate: ok}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New() error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.cfg.Backoff != DefaultBackoff || c.cfg.Node.UserAgentName != UserAgentName || c.cfg.Mode != ModeDelta {
				t.Errorf("defaults not filled: %+v", c.cfg)
			}
		})
	}
}

func TestMetricsRegistration(t *testing.T) {
	reg := metric.NewRegistry()
	cfg := Config{Server: "x", Node: NewNode(NodeInfo{ID: "a"}), OnUpdate: func(*Snapshot) {}, Registerer: reg}
	if _, err := New(cfg); err != nil {
		t.Fatalf("New() error = %v", err)
	}
	if _, err := New(cfg); err == nil {
		t.Error("New() with metrics already registered: nil error")
	}
	if fams := reg.Gather(); len(fams) == 0 {
		t.Errorf("Gather() = %d families", len(fams))
	}
}

// TestMalformedResourcesAreRejected: resource bytes that are not valid
// protobuf make the whole response a NACK, naming the resource where the
// response does (delta).
func TestMalformedResourcesAreRejected(t *testing.T) {
	garbage := &anypb.Any{TypeUrl: ClusterType, Value: []byte{0x0a, 0x05, 'a'}} // name: 5 bytes, 1 present
	if _, err := decodeSotW(&discoveryv3.DiscoveryResponse{TypeUrl: ClusterType, Resources: []*anypb.Any{garbage}}); err == nil ||
		!strings.Contains(err.Error(), "unmarshal") {
		t.Errorf("SotW error = %v, want an unmarshal error", err)
	}
	_, err := decodeDelta(&discoveryv3.DeltaDiscoveryResponse{TypeUrl: ClusterType, Resources: []*discoveryv3.Resource{{Name: "orders", Resource: garbage}}})
	if err == nil || !strings.Contains(err.Error(), `resource "orders": unmarshal`) {
		t.Errorf("delta error = %v, want the resource named", err)
	}
	wrongType := &anypb.Any{TypeUrl: RouteType}
	if _, err := decodeSotW(&discoveryv3.DiscoveryResponse{TypeUrl: ClusterType, Resources: []*anypb.Any{wrongType}}); err == nil ||
		!strings.Contains(err.Error(), "in a") {
		t.Errorf("SotW error for a resource of another type = %v", err)
	}
}
