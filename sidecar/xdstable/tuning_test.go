package xdstable_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-mesh/shoal/controlplane/xds"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/sidecar/route"
	"github.com/shoal-mesh/shoal/sidecar/xdstable"
)

// A rule's circuit breakers, slow start and stall detection travel through
// the control plane's translation (issue 17) and become the settings of
// the cluster the rule routes to; a service without a route keeps the
// defaults.
func TestBuildReadsRuleTuning(t *testing.T) {
	d := durationpb.New
	to := []*shoalv1.Destination{{Service: "orders"}}
	in := xds.Input{
		Endpoints: []registry.Endpoint{
			endpoint("orders", "orders-1", 3001, registry.HealthHealthy, nil),
			endpoint("users", "users-1", 4001, registry.HealthHealthy, nil),
		},
		Routes: []*shoalv1.Route{{Name: "orders", Hosts: []string{"orders"}, Rules: []*shoalv1.Rule{
			{
				Match: &shoalv1.Match{Path: &shoalv1.Match_Prefix{Prefix: "/rr"}}, Destinations: to,
				CircuitBreakers: &shoalv1.CircuitBreakers{MaxConnections: 40, MaxPendingRequests: 30, MaxRequests: 20, MaxRetries: 7, MaxRequestsPerEndpoint: 1},
				SlowStart:       &shoalv1.SlowStart{Window: d(30 * time.Second), Aggression: proto.Float64(2), MinWeightPercent: proto.Float64(5)},
				StallDetection:  &shoalv1.StallDetection{Disabled: true},
			},
			{
				Match: &shoalv1.Match{Path: &shoalv1.Match_Prefix{Prefix: "/ll"}}, Destinations: to, Strategy: shoalv1.Strategy_STRATEGY_LEAST_LOADED,
				SlowStart:      &shoalv1.SlowStart{Window: d(time.Minute)},
				StallDetection: &shoalv1.StallDetection{MinThreshold: d(3 * time.Second), MaxThreshold: d(time.Minute)},
			},
			{Destinations: to, Strategy: shoalv1.Strategy_STRATEGY_LEAST_REQUEST, SlowStart: &shoalv1.SlowStart{Window: d(10 * time.Second)}},
		}}},
	}
	tbl, err := xdstable.Build(snapshotOf(t, in), xdstable.Options{RouteConfig: "outbound"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	cluster := func(path string) *route.Cluster {
		t.Helper()
		r := tbl.Match(request("orders", path))
		if r == nil {
			t.Fatalf("no route for %s", path)
		}
		c := r.PickCluster()
		if !strings.Contains(c.Name, "/cfg-") {
			t.Errorf("%s routes to %q, want a cluster of the rule's own", path, c.Name)
		}
		return c
	}

	rr := cluster("/rr")
	if got, want := [5]int{rr.MaxConnections, rr.MaxPendingRequests, rr.MaxRequests, rr.MaxRetries, rr.MaxRequestsPerEndpoint}, [5]int{40, 30, 20, 7, 1}; got != want {
		t.Errorf("/rr limits (connections, pending, requests, retries, per endpoint) = %v, want %v", got, want)
	}
	if want := (route.SlowStart{Window: 30 * time.Second, Aggression: 2, MinWeightPercent: 5}); rr.SlowStart != want {
		t.Errorf("/rr slow start = %+v, want %+v", rr.SlowStart, want)
	}
	if !rr.Stall.Disabled {
		t.Error("/rr stall detection is on, want off")
	}

	ll := cluster("/ll")
	if ll.LB.Name() != "least_loaded" || ll.SlowStart.Window != time.Minute {
		t.Errorf("/ll = %s with slow start %+v, want least_loaded with a 1m window", ll.LB.Name(), ll.SlowStart)
	}
	if ll.Stall.Disabled || ll.Stall.Min != 3*time.Second || ll.Stall.Max != time.Minute {
		t.Errorf("/ll stall = %+v, want on, 3s-1m", ll.Stall)
	}
	if ll.MaxRequests != route.DefaultMaxRequests || ll.MaxRetries != route.DefaultMaxRetries {
		t.Errorf("/ll limits = %d requests, %d retries, want the defaults", ll.MaxRequests, ll.MaxRetries)
	}

	lr := cluster("/")
	if lr.LB.Name() != "least_request" || lr.SlowStart.Window != 10*time.Second || lr.Stall.Disabled {
		t.Errorf("/ = %s, slow start %+v, stall %+v", lr.LB.Name(), lr.SlowStart, lr.Stall)
	}

	users := tbl.Cluster("users")
	def := route.StallDetection{}.WithDefaults()
	if users == nil || users.MaxRequests != 1024 || users.MaxConnections != 1024 || users.MaxRetries != route.DefaultMaxRetries ||
		users.MaxRequestsPerEndpoint != 1024 || users.SlowStart.Window != 0 || users.Stall != def {
		t.Errorf("users (no route) = %+v, want the defaults", users)
	}
}
