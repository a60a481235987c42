package xds

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// Proxyless clients get gRPC's security config (A29) for a service whose
// instances are all mTLS endpoints, and none for a half-migrated one (a
// gRPC client cannot choose TLS per endpoint, and one without a
// certificate provider would NACK the cluster); Envoy keeps its
// per-endpoint transport_socket_matches with SDS secrets.
func TestTranslateGRPCSecurityConfig(t *testing.T) {
	in := Input{Endpoints: []registry.Endpoint{
		endpoint("greeter", "greeter-1", "10.0.2.1", 15006, registry.HealthHealthy, mtls(), grpcProto()),
		endpoint("greeter", "greeter-2", "10.0.2.2", 15006, registry.HealthUnhealthy, mtls(), grpcProto()),
		endpoint("orders", "orders-1", "10.0.0.1", 15006, registry.HealthHealthy, mtls()),
		endpoint("orders", "orders-2", "10.0.0.2", 3001, registry.HealthHealthy),
		endpoint("users", "users-1", "10.0.1.1", 3001, registry.HealthHealthy),
	}}
	for _, caps := range allProfiles {
		t.Run(caps.Profile, func(t *testing.T) {
			res, _ := Translate(in, caps)
			if err := res.Check(); err != nil {
				t.Fatal(err)
			}
			got := map[string]*clusterv3.Cluster{}
			for _, r := range res.Clusters {
				c := r.(*clusterv3.Cluster)
				got[c.GetName()] = c
			}
			if caps.HTTPProxy {
				for name, c := range got {
					if c.GetTransportSocket() != nil {
						t.Errorf("cluster %s: an HTTP proxy got a cluster-wide transport_socket", name)
					}
				}
				if len(got["greeter"].GetTransportSocketMatches()) != 1 || len(got["orders"].GetTransportSocketMatches()) != 1 {
					t.Errorf("Envoy clusters greeter and orders lost their transport_socket_matches")
				}
				return
			}
			for name, c := range got {
				if len(c.GetTransportSocketMatches()) != 0 {
					t.Errorf("cluster %s: gRPC NACKs transport_socket_matches", name)
				}
				if (c.GetTransportSocket() != nil) != (name == "greeter") {
					t.Errorf("cluster %s: transport_socket %v, want one only for greeter (all instances mTLS)", name, c.GetTransportSocket())
				}
			}
			ts := got["greeter"].GetTransportSocket()
			if ts.GetName() != "envoy.transport_sockets.tls" {
				t.Fatalf("transport socket %q", ts.GetName())
			}
			var up tlsv3.UpstreamTlsContext
			if err := ts.GetTypedConfig().UnmarshalTo(&up); err != nil {
				t.Fatal(err)
			}
			if err := up.ValidateAll(); err != nil {
				t.Fatalf("UpstreamTlsContext.ValidateAll() = %v", err)
			}
			common := up.GetCommonTlsContext()
			vc := common.GetValidationContext()
			switch {
			case common.GetTlsParams() != nil || len(common.GetTlsCertificateSdsSecretConfigs()) != 0:
				t.Errorf("gRPC NACKs tls_params and SDS secret configs: %v", common)
			case common.GetTlsCertificateProviderInstance().GetInstanceName() != CertProviderInstance,
				vc.GetCaCertificateProviderInstance().GetInstanceName() != CertProviderInstance:
				t.Errorf("certificate provider instances: %v, want %q for identity and root", common, CertProviderInstance)
			case len(vc.GetMatchSubjectAltNames()) != 1 || vc.GetMatchSubjectAltNames()[0].GetExact() != "spiffe://shoal.local/ns/default/svc/greeter": //nolint:staticcheck // gRPC reads only this field
				t.Errorf("SAN matchers %v, want greeter's SPIFFE ID exactly", vc.GetMatchSubjectAltNames()) //nolint:staticcheck // as above
			}
		})
	}
}

// Proxyless gRPC servers (A36) registered with protocol grpc and tls mtls
// get a listener named after their address, requiring client certificates
// from the certificate provider, with their service's policies as an RBAC
// filter (A41); HTTP proxies never get it.
func TestTranslateGRPCServerListener(t *testing.T) {
	in := Input{Endpoints: []registry.Endpoint{
		endpoint("echo", "echo-1", "10.0.3.1", 50051, registry.HealthHealthy, mtls(), grpcProto()),
		endpoint("echo", "echo-2", "::1", 50051, registry.HealthHealthy, mtls(), grpcProto()),
		endpoint("plain", "plain-1", "10.0.3.2", 50051, registry.HealthHealthy, grpcProto()),
		endpoint("web", "web-1", "10.0.3.3", 15006, registry.HealthHealthy, mtls()),
	}, Policies: []*shoalv1.AuthorizationPolicy{{Name: "echo-callers", Service: "echo", Rules: []*shoalv1.AuthorizationRule{
		{Callers: []string{"ns/default/svc/web"}},
	}}}}
	for _, caps := range allProfiles {
		t.Run(caps.Profile, func(t *testing.T) {
			res, _ := Translate(in, caps)
			if err := res.Check(); err != nil {
				t.Fatal(err)
			}
			got := map[string]*listenerv3.Listener{}
			for _, r := range res.Listeners {
				l := r.(*listenerv3.Listener)
				if strings.HasPrefix(l.GetName(), GRPCServerListenerPrefix) {
					got[l.GetName()] = l
				}
			}
			want := []string{GRPCServerListenerPrefix + "10.0.3.1:50051", GRPCServerListenerPrefix + "[::1]:50051"}
			if caps.HTTPProxy {
				want = nil
			}
			if diff := cmp.Diff(want, sortedKeys(got), cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("server listeners (-want +got):\n%s", diff)
			}
			for name, l := range got {
				if a := l.GetAddress().GetSocketAddress(); a.GetPortValue() != 50051 || (a.GetAddress() != "10.0.3.1" && a.GetAddress() != "::1") {
					t.Errorf("%s: address %v", name, a)
				}
				fc := l.GetFilterChains()[0]
				var down tlsv3.DownstreamTlsContext
				if err := fc.GetTransportSocket().GetTypedConfig().UnmarshalTo(&down); err != nil {
					t.Fatal(err)
				}
				if err := down.ValidateAll(); err != nil {
					t.Fatalf("%s: DownstreamTlsContext.ValidateAll() = %v", name, err)
				}
				if !down.GetRequireClientCertificate().GetValue() ||
					down.GetCommonTlsContext().GetTlsCertificateProviderInstance().GetInstanceName() != CertProviderInstance ||
					down.GetCommonTlsContext().GetValidationContext().GetCaCertificateProviderInstance().GetInstanceName() != CertProviderInstance {
					t.Errorf("%s: DownstreamTlsContext %v, want client certificates required, both from %q", name, &down, CertProviderInstance)
				}
				hcm, err := listenerManager(l)
				if err != nil {
					t.Fatal(err)
				}
				if r := hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0]; r.GetNonForwardingAction() == nil {
					t.Errorf("%s: route %v, want non_forwarding_action (A36)", name, r)
				}
				filters := hcm.GetHttpFilters()
				if len(filters) != 2 || filters[0].GetName() != RBACFilterName || filters[1].GetName() != "envoy.filters.http.router" {
					t.Fatalf("%s: HTTP filters %v, want rbac then router", name, filters)
				}
				var rbac rbacfilterv3.RBAC
				if err := filters[0].GetTypedConfig().UnmarshalTo(&rbac); err != nil {
					t.Fatal(err)
				}
				if err := rbac.ValidateAll(); err != nil {
					t.Fatalf("%s: RBAC.ValidateAll() = %v", name, err)
				}
				p := rbac.GetRules().GetPolicies()["echo-callers/0"]
				if got := p.GetPrincipals()[0].GetAuthenticated().GetPrincipalName().GetExact(); got != "spiffe://shoal.local/ns/default/svc/web" {
					t.Errorf("%s: allowed principal %q, want web's SPIFFE ID", name, got)
				}
			}
		})
	}
}
