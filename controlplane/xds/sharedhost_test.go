package xds

import (
	"slices"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// sharedHostInput has routes sharing hosts: orders-api and users-by-id
// both serve api.example.com on different paths; users-admin and
// users-by-id both claim the bare service name users; zz-dup repeats
// orders-api's host and match and is rejected.
func sharedHostInput() Input {
	prefix := func(p string, s shoalv1.Strategy, dests ...*shoalv1.Destination) *shoalv1.Rule {
		r := rule(s, dests...)
		r.Match = &shoalv1.Match{Path: &shoalv1.Match_Prefix{Prefix: p}}
		return r
	}
	return Input{Endpoints: ordersFleet(), Routes: []*shoalv1.Route{
		route("users-by-id", []string{"api.example.com", "users"},
			prefix("/users/", shoalv1.Strategy_STRATEGY_IP_HASH, to("users")),
			prefix("/v2/users/", shoalv1.Strategy_STRATEGY_ROUND_ROBIN, to("users"))),
		route("orders-api", []string{"api.example.com", "orders.example.com"},
			prefix("/orders", shoalv1.Strategy_STRATEGY_LEAST_REQUEST, to("orders"))),
		route("users-admin", []string{"users"}, prefix("/admin", 0, toW("users", 1, "role", "admin"))),
		route("zz-dup", []string{"api.example.com"}, prefix("/orders", 0, to("users"))),
	}}
}

func virtualHosts(t *testing.T, res *Resources, name string) []*routev3.VirtualHost {
	t.Helper()
	for _, r := range res.Routes {
		if rc := r.(*routev3.RouteConfiguration); rc.GetName() == name {
			return rc.GetVirtualHosts()
		}
	}
	t.Fatalf("no route configuration %q", name)
	return nil
}

// vhostSummary is a virtual host's name, domains and route names.
type vhostSummary struct {
	Name    string
	Domains []string
	Routes  []string
}

func summarize(vhs []*routev3.VirtualHost) []vhostSummary {
	var out []vhostSummary
	for _, vh := range vhs {
		s := vhostSummary{Name: vh.GetName(), Domains: vh.GetDomains()}
		for _, r := range vh.GetRoutes() {
			s.Routes = append(s.Routes, r.GetName())
		}
		out = append(out, s)
	}
	return out
}

func TestTranslateMergesRoutesSharingAHost(t *testing.T) {
	for _, caps := range allProfiles {
		t.Run(caps.Profile, func(t *testing.T) {
			res, statuses := Translate(sharedHostInput(), caps)
			if err := res.Check(); err != nil {
				t.Fatalf("Check() = %v", err)
			}
			wantStatuses := []*shoalv1.RouteStatus{
				{Name: "orders-api", Version: "7", Accepted: true},
				{Name: "users-admin", Version: "7", Accepted: true},
				{Name: "users-by-id", Version: "7", Accepted: true},
				{Name: "zz-dup", Version: "7", Error: `rules[0].match: host "api.example.com" with this match is already routed by route "orders-api" (rules[0])`},
			}
			if diff := cmp.Diff(wantStatuses, statuses, protocmp.Transform()); diff != "" {
				t.Errorf("statuses (-want +got):\n%s", diff)
			}
			want := []vhostSummary{
				{Name: "orders-api+users-by-id", Domains: []string{"api.example.com", "api.example.com:*"},
					Routes: []string{"orders-api/0", "users-by-id/0", "users-by-id/1"}},
				{Name: "orders-api", Domains: []string{"orders.example.com", "orders.example.com:*"}, Routes: []string{"orders-api/0"}},
				{Name: "users-admin+users-by-id", Domains: []string{"users", "users:*"},
					Routes: []string{"users-admin/0", "users-by-id/0", "users-by-id/1"}},
				{Name: "service-orders", Domains: []string{"orders", "orders:*"}, Routes: []string{"service-orders/0"}},
			}
			if diff := cmp.Diff(want, summarize(virtualHosts(t, res, RouteOutbound))); diff != "" {
				t.Errorf("outbound virtual hosts (-want +got):\n%s", diff)
			}
			wantUsers := []vhostSummary{{Name: "users", Domains: []string{"*"}, Routes: []string{"users-admin/0", "users-by-id/0", "users-by-id/1"}}}
			if diff := cmp.Diff(wantUsers, summarize(virtualHosts(t, res, "users"))); diff != "" {
				t.Errorf("users (proxyless) virtual hosts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTranslateSharedHostIsDeterministic(t *testing.T) {
	in := sharedHostInput()
	want, _ := Translate(in, CapabilitiesEnvoy)
	slices.Reverse(in.Routes)
	got, _ := Translate(in, CapabilitiesEnvoy)
	if diff := cmp.Diff(want.Routes, got.Routes, protocmp.Transform()); diff != "" {
		t.Errorf("route order changed the output (-want +got):\n%s", diff)
	}
}

func TestCheckRejectsADomainInTwoVirtualHosts(t *testing.T) {
	res, _ := Translate(sharedHostInput(), CapabilitiesEnvoy)
	for i, r := range res.Routes {
		rc := r.(*routev3.RouteConfiguration)
		if rc.GetName() != RouteOutbound {
			continue
		}
		bad := &routev3.RouteConfiguration{Name: rc.GetName(), VirtualHosts: slices.Clone(rc.GetVirtualHosts())}
		dup := &routev3.VirtualHost{Name: "dup", Domains: []string{"api.example.com"}, Routes: rc.GetVirtualHosts()[0].GetRoutes()}
		bad.VirtualHosts = append(bad.VirtualHosts, dup)
		broken := *res
		broken.Routes = slices.Clone(res.Routes)
		broken.Routes[i] = bad
		if err := broken.Check(); err == nil {
			t.Errorf("Check() = nil for a domain in two virtual hosts")
		}
	}
}
