package xds

import (
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// policyInput is orders protected by two policies (web anywhere, the
// ops namespace on GET /admin/ only, any authenticated caller on
// /healthz) and users without one, in trust domain example.org.
func policyInput() Input {
	return Input{TrustDomain: "example.org", Endpoints: []registry.Endpoint{
		endpoint("orders", "orders-1", "10.0.0.1", 15006, registry.HealthHealthy, mtls()),
		endpoint("users", "users-1", "10.0.1.1", 15006, registry.HealthHealthy, mtls()),
	}, Policies: []*shoalv1.AuthorizationPolicy{
		{Name: "orders-web", Service: "orders", Rules: []*shoalv1.AuthorizationRule{
			{Callers: []string{"spiffe://example.org/ns/default/svc/web"}},
			{Callers: []string{"ns/ops/*"}, Paths: []string{"/admin/"}, Methods: []string{"GET"}},
		}},
		{Name: "orders-health", Service: "orders", Rules: []*shoalv1.AuthorizationRule{
			{Callers: []string{"*"}, Paths: []string{"/healthz"}},
		}},
	}}
}

func TestTranslatePolicyIsValidEnvoyRBAC(t *testing.T) {
	for _, caps := range allProfiles {
		res, _ := Translate(policyInput(), caps)
		byName := map[string]*routev3.RouteConfiguration{}
		for _, r := range res.Routes {
			rc := r.(*routev3.RouteConfiguration)
			byName[rc.GetName()] = rc
		}
		users := byName["users"].GetVirtualHosts()[0]
		if len(users.GetTypedPerFilterConfig()) != 0 {
			t.Errorf("%s: users has no policy but its virtual host has %v", caps.Profile, users.GetTypedPerFilterConfig())
		}
		for _, name := range []string{RouteOutbound, RouteGateway} {
			for _, vh := range byName[name].GetVirtualHosts() {
				if len(vh.GetTypedPerFilterConfig()) != 0 {
					t.Errorf("%s: %s virtual host %s carries a policy; only the <service> route configuration should", caps.Profile, name, vh.GetName())
				}
			}
		}
		a := byName["orders"].GetVirtualHosts()[0].GetTypedPerFilterConfig()[RBACFilterName]
		if a == nil {
			t.Fatalf("%s: orders virtual host has no %s config", caps.Profile, RBACFilterName)
		}
		fc := &routev3.FilterConfig{}
		if err := a.UnmarshalTo(fc); err != nil {
			t.Fatal(err)
		}
		if !fc.GetIsOptional() {
			t.Errorf("%s: the RBAC override is not optional; clients without an RBAC filter would NACK it", caps.Profile)
		}
		if err := fc.ValidateAll(); err != nil {
			t.Errorf("%s: FilterConfig.ValidateAll() = %v", caps.Profile, err)
		}
		pr := &rbacfilterv3.RBACPerRoute{}
		if err := fc.GetConfig().UnmarshalTo(pr); err != nil {
			t.Fatal(err)
		}
		if err := pr.ValidateAll(); err != nil {
			t.Errorf("%s: RBACPerRoute.ValidateAll() = %v", caps.Profile, err)
		}
		got := []string{}
		for name := range pr.GetRbac().GetRules().GetPolicies() {
			got = append(got, name)
		}
		if len(got) != 3 {
			t.Errorf("%s: policies %v, want orders-web/0, orders-web/1 and orders-health/0", caps.Profile, got)
		}
	}
}
