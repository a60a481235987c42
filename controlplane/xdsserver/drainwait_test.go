package xdsserver

import (
	"context"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/shoal-mesh/shoal/controlplane/xds"
	"github.com/shoal-mesh/shoal/internal/metric"
)

// WaitRemoved (issue 18) answers from what each client ACKed: a delta and
// a SotW client hold orders-1 until they ACK the assignment without it; a
// client that disconnected holds what it last ACKed until the bound.
func TestWaitRemovedFollowsEachClientsACKs(t *testing.T) {
	srv, addr := startServer(t, Config{Registerer: metric.NewRegistry()})
	delta := newDeltaClient(t, addr, &corev3.Node{Id: "delta-1"})
	delta.subscribe(resource.EndpointType, "orders")
	sotw := newSotwClient(t, addr, &corev3.Node{Id: "sotw-1"})
	sotw.subscribe(resource.EndpointType, "orders")
	other := newDeltaClient(t, addr, &corev3.Node{Id: "users-only"})
	other.subscribe(resource.EndpointType, "users")
	fleet := ordersFleet()
	srv.Update(xds.Input{Endpoints: fleet})
	delta.recv()
	sotw.recv()
	other.recv()

	// ACKs reach the server asynchronously.
	eventually(t, "both orders clients' ACKs tracked", func() bool {
		_, clients := srv.track.holders("orders", "10.0.0.1:3001")
		return clients == 2
	})
	r := srv.WaitRemoved(t.Context(), "orders", "10.0.0.1", 3001, 0)
	if r.Converged || !slices.Equal(r.Pending, []string{"delta-1", "sotw-1"}) || r.Clients != 2 {
		t.Fatalf("while registered: %+v, want pending [delta-1 sotw-1] of 2 clients (users-only never had orders)", r)
	}
	if r := srv.WaitRemoved(t.Context(), "orders", "10.0.0.9", 3001, 0); !r.Converged {
		t.Errorf("an endpoint no client has: %+v, want converged at once", r)
	}

	results := make(chan RemovedResult, 1)
	go func() {
		results <- srv.WaitRemoved(context.Background(), "orders", "10.0.0.1", 3001, defaultTestTimeout)
	}()
	srv.Update(xds.Input{Endpoints: fleet[1:]}) // orders-1 deregistered
	delta.recv()
	select {
	case r := <-results:
		t.Fatalf("answered before sotw-1 ACKed: %+v", r)
	case <-time.After(defaultTestShortTimeout):
	}
	sotw.recv()
	select {
	case r := <-results:
		if !r.Converged || len(r.Pending) != 0 || r.Clients != 2 {
			t.Errorf("after both ACKed: %+v, want converged with 2 clients", r)
		}
	case <-time.After(defaultTestTimeout):
		t.Fatal("no answer after every client ACKed")
	}

	// A client that goes away keeps routing on what it ACKed: it stays
	// pending, named, until the bound.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := dialADS(t, addr).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "gone-1"}, TypeUrl: resource.EndpointType, ResourceNamesSubscribe: []string{"orders"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResponseNonce: resp.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	holds := func(name string) bool {
		pending, _ := srv.track.holders("orders", "10.0.0.2:3001")
		return slices.Contains(pending, name)
	}
	eventually(t, "gone-1's ACK is tracked", func() bool { return holds("gone-1") })
	cancel()
	eventually(t, "gone-1's stream closed", func() bool { return holds("gone-1 (disconnected)") })
	r = srv.WaitRemoved(t.Context(), "orders", "10.0.0.2", 3001, defaultTestShortTimeout)
	if r.Converged || !slices.Contains(r.Pending, "gone-1 (disconnected)") {
		t.Errorf("with gone-1 disconnected: %+v, want it pending", r)
	}
	if got := srv.dm.unacked.Value(); got < 1 {
		t.Errorf("shoal_xds_drain_unacked_proxies_total = %v, want >= 1", got)
	}
}

// eventually polls cond every few milliseconds until defaultTestTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(defaultTestTimeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: not within %s", what, defaultTestTimeout)
		}
	}
}

// A SotW client that stops asking for an assignment no longer holds it
// (SotW EDS has no removal; Envoy drops the name when its cluster goes).
func TestWaitRemovedForgetsWhatASotWClientNoLongerAsksFor(t *testing.T) {
	srv, addr := startServer(t, Config{})
	sotw := newSotwClient(t, addr, &corev3.Node{Id: "sotw-1"})
	sotw.subscribe(resource.EndpointType, "orders", "users")
	srv.Update(xds.Input{Endpoints: ordersFleet()})
	sotw.recv()
	eventually(t, "sotw-1 holds orders-1", func() bool {
		pending, _ := srv.track.holders("orders", "10.0.0.1:3001")
		return slices.Equal(pending, []string{"sotw-1"})
	})
	sotw.subscribe(resource.EndpointType, "users")
	eventually(t, "sotw-1 dropped orders", func() bool {
		pending, clients := srv.track.holders("orders", "10.0.0.1:3001")
		return len(pending) == 0 && clients == 0
	})
}
