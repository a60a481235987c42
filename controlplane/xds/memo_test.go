package xds

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// TestMemoMatchesTranslate feeds one memo a sequence of updates, each
// changing a little of the last as the registry does (changed instances and
// routes are new values), and checks that every result equals a fresh
// Translate of the same input for every profile.
func TestMemoMatchesTranslate(t *testing.T) {
	fleet := ordersFleet()
	canary := route("canary", []string{"orders"},
		rule(shoalv1.Strategy_STRATEGY_LEAST_REQUEST, toW("orders", 90, "version", "v1"), toW("orders", 10, "version", "v2")))
	byUser := route("users-by-id", []string{"users"}, withHash(rule(shoalv1.Strategy_STRATEGY_RING_HASH, to("users")), headerKey("x-user")))
	replace := func(eps []registry.Endpoint, i int, e registry.Endpoint) []registry.Endpoint {
		out := append([]registry.Endpoint(nil), eps...)
		out[i] = e
		return out
	}
	moved := replace(fleet, 0, endpoint("orders", "orders-1", "10.0.0.9", 3001, registry.HealthHealthy, zone("a"), labels("version", "v1")))
	unhealthy := replace(moved, 3, registry.Endpoint{Instance: moved[3].Instance, Health: registry.HealthUnhealthy})
	toGRPC := replace(unhealthy, 3, endpoint("users", "users-1", "10.0.1.1", 4001, registry.HealthHealthy, grpcProto()))
	// A proxyless gRPC server with mTLS has a listener named by its address.
	grpcServer := replace(toGRPC, 3, endpoint("users", "users-1", "10.0.1.1", 4001, registry.HealthHealthy, grpcProto(), mtls()))
	grpcServerMoved := replace(toGRPC, 3, endpoint("users", "users-1", "10.0.1.2", 4001, registry.HealthHealthy, grpcProto(), mtls()))
	steps := []struct {
		name string
		in   Input
	}{
		{"first update", Input{Endpoints: fleet, Routes: []*shoalv1.Route{canary}}},
		{"the same update again", Input{Endpoints: fleet, Routes: []*shoalv1.Route{canary}}},
		{"an endpoint moved", Input{Endpoints: moved, Routes: []*shoalv1.Route{canary}}},
		{"a health change", Input{Endpoints: unhealthy, Routes: []*shoalv1.Route{canary}}},
		{"a protocol change", Input{Endpoints: toGRPC, Routes: []*shoalv1.Route{canary}}},
		{"a gRPC server with mTLS", Input{Endpoints: grpcServer, Routes: []*shoalv1.Route{canary}}},
		{"the gRPC server moved", Input{Endpoints: grpcServerMoved, Routes: []*shoalv1.Route{canary}}},
		{"a route added", Input{Endpoints: toGRPC, Routes: []*shoalv1.Route{canary, byUser}}},
		{"a service gone", Input{Endpoints: toGRPC[:3], Routes: []*shoalv1.Route{canary, byUser}}},
		{"a route gone", Input{Endpoints: toGRPC[:3], Routes: []*shoalv1.Route{byUser}}},
		{"an endpoint gone", Input{Endpoints: toGRPC[1:3], Routes: []*shoalv1.Route{byUser}}},
	}
	var m Memo
	for _, step := range steps {
		got, gotStatuses, err := m.Translate(step.in, Profiles())
		if err != nil {
			t.Fatalf("%s: translate: %v", step.name, err)
		}
		for _, caps := range Profiles() {
			want, wantStatuses := Translate(step.in, caps)
			if diff := cmp.Diff(want, got[caps.Profile], protocmp.Transform()); diff != "" {
				t.Errorf("%s, profile %s: resources (-want +got):\n%s", step.name, caps.Profile, diff)
			}
			if diff := cmp.Diff(wantStatuses, gotStatuses, protocmp.Transform()); diff != "" {
				t.Errorf("%s: statuses (-want +got):\n%s", step.name, diff)
			}
		}
	}
}

// TestMemoReusesUnchanged checks that an endpoint change rebuilds only its
// load assignment and nothing else.
func TestMemoReusesUnchanged(t *testing.T) {
	fleet := ordersFleet()
	var m Memo
	first, _, err := m.Translate(Input{Endpoints: fleet}, Profiles())
	if err != nil {
		t.Fatal(err)
	}
	moved := append([]registry.Endpoint(nil), fleet...)
	moved[3] = endpoint("users", "users-1", "10.0.1.9", 4001, registry.HealthHealthy)
	second, _, err := m.Translate(Input{Endpoints: moved}, Profiles())
	if err != nil {
		t.Fatal(err)
	}
	for _, caps := range Profiles() {
		a, b := first[caps.Profile], second[caps.Profile]
		if !slices.Equal(a.Listeners, b.Listeners) || !slices.Equal(a.Routes, b.Routes) || !slices.Equal(a.Clusters, b.Clusters) {
			t.Errorf("profile %s: listeners, routes or clusters rebuilt for an endpoint change", caps.Profile)
		}
		for i := range a.Endpoints {
			name := a.Endpoints[i].(interface{ GetClusterName() string }).GetClusterName()
			if same := a.Endpoints[i] == b.Endpoints[i]; same != (name != "users") {
				t.Errorf("profile %s: load assignment %s reused = %v", caps.Profile, name, same)
			}
		}
	}
}
