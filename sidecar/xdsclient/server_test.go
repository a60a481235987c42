package xdsclient

import (
	"context"
	"net"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
)

const testNodeID = "sidecar-1"

// testServer is go-control-plane's own xDS server over a SnapshotCache in
// ADS mode, on 127.0.0.1. It records what clients send.
type testServer struct {
	addr     string
	cache    cache.SnapshotCache
	sotwOnly bool

	// mu guards the fields below and the running server.
	mu          sync.Mutex
	errDetails  []string       // error_detail messages of NACKs, both variants
	nodes       []*corev3.Node // the node of every request that carried one
	unsubscribe []string       // delta resource_names_unsubscribe
	streams     int            // streams opened, both variants
	grpc        *grpc.Server
	cancel      context.CancelFunc
	done        chan struct{}
}

// startServer starts a server with snapshot m for testNodeID. sotwOnly
// serves only StreamAggregatedResources: delta answers Unimplemented.
func startServer(t *testing.T, m mesh, sotwOnly bool) *testServer {
	t.Helper()
	s := &testServer{cache: cache.NewSnapshotCache(true, cache.IDHash{}, quietLogger{}), sotwOnly: sotwOnly}
	s.set(t, m)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = lis.Addr().String()
	s.serve(lis)
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) set(t *testing.T, m mesh) {
	t.Helper()
	if err := s.cache.SetSnapshot(context.Background(), testNodeID, m.snapshot()); err != nil {
		t.Fatal(err)
	}
}

func (s *testServer) serve(lis net.Listener) {
	ctx, cancel := context.WithCancel(context.Background())
	cb := serverv3.CallbackFuncs{
		StreamOpenFunc: func(context.Context, int64, string) error { s.count(); return nil },
		DeltaStreamOpenFunc: func(context.Context, int64, string) error {
			s.count()
			return nil
		},
		StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
			s.record(r.GetErrorDetail().GetMessage(), nil, r.GetNode())
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			s.record(r.GetErrorDetail().GetMessage(), r.GetResourceNamesUnsubscribe(), r.GetNode())
			return nil
		},
	}
	xs := serverv3.NewServer(ctx, s.cache, cb)
	g := grpc.NewServer()
	if s.sotwOnly {
		discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, sotwOnly{xs: xs})
	} else {
		discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, xs)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = g.Serve(lis) // returns on Stop
	}()
	s.mu.Lock()
	s.grpc, s.cancel, s.done = g, cancel, done
	s.mu.Unlock()
}

// stop stops the server and waits for it; it is idempotent.
func (s *testServer) stop() {
	s.mu.Lock()
	g, cancel, done := s.grpc, s.cancel, s.done
	s.grpc = nil
	s.mu.Unlock()
	if g == nil {
		return
	}
	cancel()
	g.Stop()
	<-done
}

// restart serves again on the same address.
func (s *testServer) restart(t *testing.T) {
	t.Helper()
	lis, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Fatalf("relisten on %s: %v", s.addr, err)
	}
	s.serve(lis)
}

func (s *testServer) count() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams++
}

func (s *testServer) record(errDetail string, unsub []string, node *corev3.Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if node != nil {
		s.nodes = append(s.nodes, node)
	}
	if errDetail != "" {
		s.errDetails = append(s.errDetails, errDetail)
	}
	s.unsubscribe = append(s.unsubscribe, unsub...)
}

// seen returns copies of what was recorded.
func (s *testServer) seen() (errDetails, unsubscribe []string, streams int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.errDetails...), append([]string(nil), s.unsubscribe...), s.streams
}

// sentNodes returns the nodes clients sent.
func (s *testServer) sentNodes() []*corev3.Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*corev3.Node(nil), s.nodes...)
}

// sotwOnly serves SotW ADS only; its delta method is the generated
// Unimplemented one.
type sotwOnly struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	xs serverv3.Server
}

func (s sotwOnly) StreamAggregatedResources(st discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return s.xs.StreamAggregatedResources(st)
}

// quietLogger discards go-control-plane's logs.
type quietLogger struct{}

func (quietLogger) Debugf(string, ...any) {}
func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
