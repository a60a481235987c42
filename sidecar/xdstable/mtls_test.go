package xdstable_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shoal-mesh/shoal/controlplane/xds"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/sidecar/xdstable"
)

// halfMigrated is orders with one mTLS endpoint (a sidecar with an
// identity, port 15006) and one plain Node.js app (port 3002), and users
// with a plain endpoint only, in trust domain example.org.
func halfMigrated() xds.Input {
	secure := endpoint("orders", "orders-1", 15006, registry.HealthHealthy, nil)
	secure.TLS = registry.TLSMutual
	return xds.Input{TrustDomain: "example.org", Endpoints: []registry.Endpoint{
		secure,
		endpoint("orders", "orders-2", 3002, registry.HealthHealthy, nil),
		endpoint("users", "users-1", 3003, registry.HealthHealthy, nil),
	}}
}

type tlsSeen struct {
	mtls bool
	san  string
}

// endpointTLS builds the table and returns, per endpoint address, what
// Build told Options.ServerID about it and the ServerID it recorded.
func endpointTLS(t *testing.T, serverID func(service string, mtls bool, san string) string) (map[string]tlsSeen, map[string]string) {
	t.Helper()
	seen := map[string]tlsSeen{}
	tab, err := xdstable.Build(snapshotOf(t, halfMigrated()), xdstable.Options{RouteConfig: "outbound",
		ServerID: func(service string, mtls bool, san string) string {
			return serverID(service, mtls, san)
		}})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	ids := map[string]string{}
	for _, name := range []string{"orders", "users"} {
		cl := tab.Cluster(name)
		if cl == nil {
			t.Fatalf("no %s cluster", name)
		}
		for _, e := range cl.Endpoints {
			ids[e.Address] = e.ServerID
		}
	}
	// Record what ServerID was told, per endpoint, in a second pass that
	// returns what the first returned.
	_, _ = xdstable.Build(snapshotOf(t, halfMigrated()), xdstable.Options{RouteConfig: "outbound",
		ServerID: func(service string, mtls bool, san string) string {
			seen[service+"/"+boolStr(mtls)+"/"+san] = tlsSeen{mtls, san}
			return ""
		}})
	return seen, ids
}

func boolStr(b bool) string {
	if b {
		return "mtls"
	}
	return "plain"
}

func TestMTLSEndpointsAsTheControlPlaneMarksThem(t *testing.T) {
	// The sidecar's policy in auto mode: mTLS with the SAN the cluster
	// requires for marked endpoints, plain for the others.
	auto := func(_ string, mtls bool, san string) string {
		if mtls {
			return san
		}
		return ""
	}
	seen, ids := endpointTLS(t, auto)
	want := map[string]string{
		"127.0.0.1:15006": "spiffe://example.org/ns/default/svc/orders",
		"127.0.0.1:3002":  "",
		"127.0.0.1:3003":  "",
	}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("ServerID per endpoint (-want +got):\n%s", diff)
	}
	wantSeen := map[string]tlsSeen{
		"orders/mtls/spiffe://example.org/ns/default/svc/orders": {true, "spiffe://example.org/ns/default/svc/orders"},
		"orders/plain/": {false, ""},
		"users/plain/":  {false, ""},
	}
	if diff := cmp.Diff(wantSeen, seen, cmp.AllowUnexported(tlsSeen{})); diff != "" {
		t.Errorf("what Build told ServerID (-want +got):\n%s", diff)
	}
}

func TestStrictMTLSRequiresTheServiceIdentityOfEveryEndpoint(t *testing.T) {
	strict := func(service string, _ bool, _ string) string { return "spiffe://example.org/ns/default/svc/" + service }
	_, ids := endpointTLS(t, strict)
	want := map[string]string{
		"127.0.0.1:15006": "spiffe://example.org/ns/default/svc/orders",
		"127.0.0.1:3002":  "spiffe://example.org/ns/default/svc/orders",
		"127.0.0.1:3003":  "spiffe://example.org/ns/default/svc/users",
	}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("ServerID per endpoint (-want +got):\n%s", diff)
	}
}
