package xdstable_test

import (
	"testing"

	"github.com/shoal-mesh/shoal/controlplane/xds"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/sidecar/xdstable"
)

// halfMigrated is orders with one mTLS endpoint (a sidecar with an
// identity, port 15006) and one plain Node.js app (port 3002).
func halfMigrated(t *testing.T) xds.Input {
	t.Helper()
	secure := endpoint("orders", "orders-1", 15006, registry.HealthHealthy, nil)
	secure.TLS = registry.TLSMutual
	return xds.Input{Endpoints: []registry.Endpoint{secure, endpoint("orders", "orders-2", 3002, registry.HealthHealthy, nil)}}
}

func serverIDs(t *testing.T, in xds.Input, serverID func(service string, mtls bool) string) map[string]string {
	t.Helper()
	tab, err := xdstable.Build(snapshotOf(t, in), xdstable.Options{RouteConfig: "outbound", ServerID: serverID})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	cl := tab.Cluster("orders")
	if cl == nil {
		t.Fatal("no orders cluster")
	}
	out := map[string]string{}
	for _, e := range cl.Endpoints {
		out[e.Address] = e.ServerID
	}
	return out
}

func TestStrictMTLSRequiresTheServiceIdentityOfEveryEndpoint(t *testing.T) {
	const id = "spiffe://shoal.local/ns/default/svc/orders"
	got := serverIDs(t, halfMigrated(t), func(service string, _ bool) string { return "spiffe://shoal.local/ns/default/svc/" + service })
	want := map[string]string{"127.0.0.1:15006": id, "127.0.0.1:3002": id}
	for addr, w := range want {
		if got[addr] != w {
			t.Errorf("endpoint %s: ServerID %q, want %q", addr, got[addr], w)
		}
	}
}

func TestMTLSEndpointsAsTheControlPlaneMarksThem(t *testing.T) {
	// SEAM (issue 13): xdswire decodes neither LbEndpoint.metadata nor
	// Cluster.transport_socket_matches, and new xDS fields are not to be
	// hand-decoded; xdstable.endpointMTLS reads them once the generated
	// Envoy types replace xdswire. Remove this skip then.
	t.Skip("the sidecar's xDS decoder does not read endpoint metadata yet (xdstable.endpointMTLS); --mtls=strict covers mTLS meanwhile")
	got := serverIDs(t, halfMigrated(t), func(service string, mtls bool) string {
		if !mtls {
			return ""
		}
		return "spiffe://shoal.local/ns/default/svc/" + service
	})
	if got["127.0.0.1:15006"] != "spiffe://shoal.local/ns/default/svc/orders" || got["127.0.0.1:3002"] != "" {
		t.Fatalf("ServerIDs %v: want mTLS to the registered mTLS endpoint only", got)
	}
}
