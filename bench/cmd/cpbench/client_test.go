package main

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// allNodes puts every client in one snapshot.
type allNodes struct{}

func (allNodes) ID(*corev3.Node) string { return "all" }

func snapshot(t *testing.T, version, addr string) *cache.Snapshot {
	t.Helper()
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: "svc-0000", Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}}}}}}}},
	}}}
	s, err := cache.NewSnapshot(version, map[resource.Type][]types.Resource{
		resource.ClusterType:  {&clusterv3.Cluster{Name: "svc-0000"}},
		resource.EndpointType: {cla},
		resource.ListenerType: {&listenerv3.Listener{Name: "outbound"}},
		resource.RouteType:    {&routev3.RouteConfiguration{Name: "outbound"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestClientsSeeAChange runs a delta and a SotW client against
// go-control-plane's reference server: both sync every type, ACK, and
// report the change whose marker address a new snapshot carries.
func TestClientsSeeAChange(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	sc := cache.NewSnapshotCache(true, allNodes{}, nil)
	if err := sc.SetSnapshot(ctx, "all", snapshot(t, "1", initialAddr(0, 0))); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, serverv3.NewServer(ctx, sc, nil))
	go g.Serve(lis)
	defer g.Stop()

	var cur atomic.Pointer[change]
	results := make(chan seen, 8)
	cctx, ccancel := context.WithCancel(ctx)
	clients := []*client{newClient(0, true, 1, &cur, results), newClient(1, false, 1, &cur, results)}
	for _, c := range clients {
		go c.run(cctx, lis.Addr().String())
	}
	defer func() {
		ccancel()
		for _, c := range clients {
			<-c.done
		}
	}()
	for _, c := range clients {
		select {
		case <-c.synced:
		case <-c.done:
			t.Fatalf("client %d ended before syncing: %v", c.id, c.err())
		case <-ctx.Done():
			t.Fatalf("client %d did not sync (types %v)", c.id, c.typesMask.Load())
		}
	}
	cur.Store(&change{seq: 7, marker: []byte(markerAddr(7)), written: time.Now()})
	if err := sc.SetSnapshot(ctx, "all", snapshot(t, "2", markerAddr(7))); err != nil {
		t.Fatal(err)
	}
	got := collect(ctx, results, 7, 2, 20*time.Second)
	if len(got) != 2 {
		t.Fatalf("collect() got %d receipts, want 2: %+v", len(got), got)
	}
	modes := map[bool]bool{}
	for _, s := range got {
		modes[s.delta] = true
		if s.bytes <= 0 || s.latency < 0 {
			t.Errorf("receipt %+v: want positive bytes and non-negative latency", s)
		}
	}
	if !modes[true] || !modes[false] {
		t.Errorf("receipts %+v: want one delta and one SotW", got)
	}
}

func TestMarkerAddrIsNotInInitialAddrs(t *testing.T) {
	if got := markerAddr(1); got != "127.100.0.1" {
		t.Errorf("markerAddr(1) = %q", got)
	}
	if got := initialAddr(999, 9); got[:6] != "127.0." {
		t.Errorf("initialAddr(999, 9) = %q, want 127.0.x.y", got)
	}
}
