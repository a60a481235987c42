package xdsserver_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	grpcxds "google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-mesh/shoal/controlplane/xds"
	"github.com/shoal-mesh/shoal/controlplane/xdsserver/xdsservertest"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

const (
	defaultTestTimeout = 10 * time.Second
	// removalBound is the functional bound: a deregistered instance
	// is out of rotation within 1 s.
	removalBound = time.Second
)

// dialXDS connects grpc-go's xds resolver to xds:///<svc> with a bootstrap
// that points at the control plane.
func dialXDS(t *testing.T, cpAddr, svc string) testgrpc.TestServiceClient {
	t.Helper()
	bootstrap := fmt.Sprintf(`{
		"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": "grpc-go-e2e", "cluster": "e2e"}
	}`, cpAddr)
	builder, err := grpcxds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///"+svc, grpc.WithResolvers(builder), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testgrpc.NewTestServiceClient(cc)
}

// call makes one RPC, with header x-user when user is set, and returns the
// backend that answered.
func call(ctx context.Context, t *testing.T, c testgrpc.TestServiceClient, user string) string {
	t.Helper()
	id, err := tryCall(ctx, c, user)
	if err != nil {
		t.Fatalf("UnaryCall() = %v", err)
	}
	return id
}

// tryCall is call for the moments a client switches routes: grpc-go may
// fail an RPC picked between its new route table and its new cluster
// balancer ("unknown cluster selected for RPC"), a client-side transient.
func tryCall(ctx context.Context, c testgrpc.TestServiceClient, user string) (string, error) {
	if user != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-user", user)
	}
	ctx, cancel := context.WithTimeout(ctx, defaultTestTimeout)
	defer cancel()
	resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true))
	return resp.GetHostname(), err
}

// pollUntil calls cond until it holds or the test timeout passes.
func pollUntil(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, defaultTestTimeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func ringHashRoute(strategy shoalv1.Strategy) *shoalv1.Route {
	return &shoalv1.Route{Name: "echo", Hosts: []string{"echo"}, Rules: []*shoalv1.Rule{{
		Destinations: []*shoalv1.Destination{{Service: "echo"}},
		Strategy:     strategy,
		HashKey:      &shoalv1.HashKey{Key: &shoalv1.HashKey_Header{Header: "x-user"}},
	}}}
}

func TestGRPCGoXDSClient(t *testing.T) {
	ctx := t.Context()
	eps := xdsservertest.StartBackends(t, "echo", 3)
	srv, addr := xdsservertest.StartServer(t)
	srv.Update(xds.Input{Endpoints: eps})
	client := dialXDS(t, addr, "echo")

	t.Run("round robin spreads evenly", func(t *testing.T) {
		seen := map[string]bool{}
		pollUntil(ctx, t, "every backend answered", func() bool {
			seen[call(ctx, t, client, "")] = true
			return len(seen) == 3
		})
		counts := map[string]int{}
		for range 30 {
			counts[call(ctx, t, client, "")]++
		}
		for _, ep := range eps {
			if n := counts[ep.ID]; n < 9 || n > 11 {
				t.Errorf("backend %s got %d of 30 calls, want 10±1 (%v)", ep.ID, n, counts)
			}
		}
	})

	t.Run("ring hash on a header keeps a user on one backend", func(t *testing.T) {
		srv.Update(xds.Input{Endpoints: eps, Routes: []*shoalv1.Route{ringHashRoute(shoalv1.Strategy_STRATEGY_RING_HASH)}})
		// sticky reports whether ten calls for user reached one backend. A
		// failed call counts as not sticky: while the switch is in progress
		// grpc-go may briefly select a cluster it has not received yet.
		sticky := func(user string) (string, bool) {
			first, err := tryCall(ctx, client, user)
			if err != nil {
				return "", false
			}
			for range 9 {
				if id, err := tryCall(ctx, client, user); err != nil || id != first {
					return "", false
				}
			}
			return first, true
		}
		pollUntil(ctx, t, "the ring hash route is in force", func() bool {
			for range 10 {
				if _, err := tryCall(ctx, client, "alice"); err != nil {
					return false
				}
			}
			_, ok := sticky("alice")
			return ok
		})
		backends := map[string]bool{}
		for i := range 20 {
			user := "user-" + strconv.Itoa(i)
			b, ok := sticky(user)
			if !ok {
				t.Fatalf("calls for %s went to several backends", user)
			}
			backends[b] = true
		}
		if len(backends) < 2 {
			t.Errorf("20 users all hashed to %v; want a spread", backends)
		}
	})

	t.Run("least request serves every backend without a NACK", func(t *testing.T) {
		srv.Update(xds.Input{Endpoints: eps, Routes: []*shoalv1.Route{ringHashRoute(shoalv1.Strategy_STRATEGY_LEAST_REQUEST)}})
		seen := map[string]bool{}
		pollUntil(ctx, t, "least request spreads over every backend", func() bool {
			if id, err := tryCall(ctx, client, "alice"); err == nil {
				seen[id] = true
			}
			return len(seen) == 3
		})
		for _, c := range srv.Status() {
			for _, rs := range c.GetResources() {
				if rs.GetNackError() != "" {
					t.Errorf("client %s NACKed %s: %s", c.GetNodeId(), rs.GetTypeUrl(), rs.GetNackError())
				}
			}
		}
	})

	// Issue 17: least_loaded reaches grpc-go as client_side_weighted_round_robin
	// (A58). Without ORCA reports from the backends every weight is the
	// mean, so it must spread over all of them, and grpc-go must ACK it.
	t.Run("least loaded is taken as weighted round robin without a NACK", func(t *testing.T) {
		// clusters returns the cluster versions sent to and ACKed by grpc-go.
		clusters := func() (sent, acked string) {
			for _, c := range srv.Status() {
				for _, rs := range c.GetResources() {
					if rs.GetNackError() != "" {
						t.Fatalf("client %s NACKed %s: %s", c.GetNodeId(), rs.GetTypeUrl(), rs.GetNackError())
					}
					if rs.GetTypeUrl() == resource.ClusterType {
						sent, acked = rs.GetSentVersion(), rs.GetAckedVersion()
					}
				}
			}
			return sent, acked
		}
		before, _ := clusters()
		srv.Update(xds.Input{Endpoints: eps, Routes: []*shoalv1.Route{{Name: "echo", Hosts: []string{"echo"}, Rules: []*shoalv1.Rule{{
			Destinations: []*shoalv1.Destination{{Service: "echo"}},
			Strategy:     shoalv1.Strategy_STRATEGY_LEAST_LOADED,
		}}}}})
		pollUntil(ctx, t, "grpc-go ACKed the clusters with echo/least_loaded", func() bool {
			sent, acked := clusters()
			return sent != before && acked == sent
		})
		seen := map[string]bool{}
		pollUntil(ctx, t, "weighted round robin spreads over every backend", func() bool {
			if id, err := tryCall(ctx, client, ""); err == nil {
				seen[id] = true
			}
			return len(seen) == 3
		})
	})

	// Issue 17: a rule's circuit breakers, slow start and stall detection
	// give it clusters of its own (echo/least_loaded/cfg-...); grpc-go
	// takes them (it reads max_requests, gRFC A32; slow start and the
	// shoal metadata are left out for it).
	t.Run("a rule's proxy settings are not NACKed", func(t *testing.T) {
		clusters := func() (sent, acked string) {
			for _, c := range srv.Status() {
				for _, rs := range c.GetResources() {
					if rs.GetNackError() != "" {
						t.Fatalf("client %s NACKed %s: %s", c.GetNodeId(), rs.GetTypeUrl(), rs.GetNackError())
					}
					if rs.GetTypeUrl() == resource.ClusterType {
						sent, acked = rs.GetSentVersion(), rs.GetAckedVersion()
					}
				}
			}
			return sent, acked
		}
		before, _ := clusters()
		srv.Update(xds.Input{Endpoints: eps, Routes: []*shoalv1.Route{{Name: "echo", Hosts: []string{"echo"}, Rules: []*shoalv1.Rule{{
			Destinations:    []*shoalv1.Destination{{Service: "echo"}},
			Strategy:        shoalv1.Strategy_STRATEGY_LEAST_LOADED,
			CircuitBreakers: &shoalv1.CircuitBreakers{MaxRequests: 50, MaxRequestsPerEndpoint: 5, MaxRetries: 2},
			SlowStart:       &shoalv1.SlowStart{Window: durationpb.New(30 * time.Second)},
			StallDetection:  &shoalv1.StallDetection{Disabled: true},
		}}}}})
		pollUntil(ctx, t, "grpc-go ACKed the clusters with the rule's own", func() bool {
			sent, acked := clusters()
			return sent != before && acked == sent
		})
		seen := map[string]bool{}
		pollUntil(ctx, t, "calls through the rule's cluster reach every backend", func() bool {
			if id, err := tryCall(ctx, client, ""); err == nil {
				seen[id] = true
			}
			return len(seen) == 3
		})
	})

	t.Run("an authorization policy on the service is not NACKed", func(t *testing.T) {
		// The RBACPerRoute rides on the virtual host of the route
		// configuration a proxyless client reads: grpc-go must accept it
		// (its RBAC filter parses the override; a client does not enforce
		// it). The ring hash route in the same resource shows that the
		// client took the new version.
		pol := &shoalv1.AuthorizationPolicy{Name: "echo", Service: "echo", Rules: []*shoalv1.AuthorizationRule{
			{Callers: []string{"ns/default/*"}, Paths: []string{"/grpc.testing."}, Methods: []string{"POST"}},
		}}
		srv.Update(xds.Input{Endpoints: eps, Routes: []*shoalv1.Route{ringHashRoute(shoalv1.Strategy_STRATEGY_RING_HASH)},
			Policies: []*shoalv1.AuthorizationPolicy{pol}})
		pollUntil(ctx, t, "the ring hash route with the policy is in force", func() bool {
			first, err := tryCall(ctx, client, "bob")
			for range 9 {
				if id, err2 := tryCall(ctx, client, "bob"); err != nil || err2 != nil || id != first {
					return false
				}
			}
			return true
		})
		for _, c := range srv.Status() {
			for _, rs := range c.GetResources() {
				if rs.GetNackError() != "" {
					t.Errorf("client %s NACKed %s: %s", c.GetNodeId(), rs.GetTypeUrl(), rs.GetNackError())
				}
			}
		}
	})

	t.Run("a removed endpoint is out of rotation within 1s", func(t *testing.T) {
		removed := eps[2].ID
		start := time.Now()
		srv.Update(xds.Input{Endpoints: eps[:2]})
		clean, lastHit := 0, start
		pollUntil(ctx, t, removed+" is out of rotation", func() bool {
			switch id, err := tryCall(ctx, client, ""); {
			case err != nil:
				clean = 0
			case id == removed:
				clean, lastHit = 0, time.Now()
			default:
				clean++
			}
			return clean >= 20
		})
		if d := lastHit.Sub(start); d > removalBound {
			t.Errorf("%s still answered %v after its removal, want out of rotation within %v", removed, d, removalBound)
		}
	})
}
