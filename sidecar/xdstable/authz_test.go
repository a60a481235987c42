package xdstable_test

import (
	"strings"
	"testing"

	"github.com/shoal-mesh/shoal/controlplane/xds"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/sidecar/authz"
	"github.com/shoal-mesh/shoal/sidecar/xdstable"
)

// protectedOrders is orders with a policy: web may call anything, the ops
// namespace only GET /admin/..., any authenticated caller /healthz; users
// has no policy.
func protectedOrders() xds.Input {
	return xds.Input{TrustDomain: "example.org", Endpoints: []registry.Endpoint{
		endpoint("orders", "orders-1", 15006, registry.HealthHealthy, nil),
		endpoint("users", "users-1", 15007, registry.HealthHealthy, nil),
	}, Policies: []*shoalv1.AuthorizationPolicy{{Name: "orders", Service: "orders", Rules: []*shoalv1.AuthorizationRule{
		{Callers: []string{"ns/default/svc/web"}},
		{Callers: []string{"ns/ops/*"}, Paths: []string{"/admin/"}, Methods: []string{"GET"}},
		{Callers: []string{"*"}, Paths: []string{"/healthz"}},
	}}}}
}

func TestBuildEnforcesTheServicePolicy(t *testing.T) {
	tab, err := xdstable.Build(snapshotOf(t, protectedOrders()), xdstable.Options{RouteConfig: "outbound", Service: "orders"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	const (
		web     = "spiffe://example.org/ns/default/svc/web"
		billing = "spiffe://example.org/ns/default/svc/billing"
		ops     = "spiffe://example.org/ns/ops/svc/console"
	)
	for _, tc := range []struct {
		caller, method, path string
		allowed              bool
	}{
		{web, "POST", "/orders", true},
		{billing, "GET", "/orders", false},
		{"", "GET", "/orders", false},
		{ops, "GET", "/admin/users", true},
		{ops, "POST", "/admin/users", false},
		{ops, "GET", "/orders", false},
		{billing, "GET", "/healthz", true},
		{"", "GET", "/healthz", false},
		{"spiffe://other.org/ns/default/svc/web", "GET", "/", false},
	} {
		reason := tab.Authz.Check(&authz.Request{Caller: tc.caller, Method: []byte(tc.method), Path: []byte(tc.path)})
		if (reason == "") != tc.allowed {
			t.Errorf("%q %s %s: reason %q, want allowed=%v", tc.caller, tc.method, tc.path, reason, tc.allowed)
		}
		if !tc.allowed && !strings.Contains(reason, "orders") {
			t.Errorf("denial reason %q does not name the service", reason)
		}
	}
}

func TestBuildAllowsAServiceWithoutPolicy(t *testing.T) {
	tab, err := xdstable.Build(snapshotOf(t, protectedOrders()), xdstable.Options{RouteConfig: "outbound", Service: "users"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if tab.Authz != nil {
		t.Fatalf("users has no policy, table has %+v", tab.Authz)
	}
	if r := tab.Authz.Check(&authz.Request{Method: []byte("GET"), Path: []byte("/")}); r != "" {
		t.Errorf("unauthenticated request to a service without policy denied: %q", r)
	}
}
