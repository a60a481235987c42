package xds

import (
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/shoal-mesh/shoal/identity/grpcbootstrap"
	"github.com/shoal-mesh/shoal/registry"
)

// Proxyless gRPC servers (gRFC A36, "xDS-Enabled gRPC Servers"): a grpc-go
// server made with xds.NewGRPCServer subscribes to the listener named by
// its bootstrap's server_listener_resource_name_template with %s replaced
// by its listening IP:port, and serves only once it has it. For every
// instance registered with "protocol": "grpc" and "tls": "mtls" (a gRPC
// server that serves mTLS itself, or a sidecar's mTLS inbound listener,
// which never subscribes) proxyless clients get such a listener: the
// instance's address, one filter chain with an HTTP connection manager
// whose routes take every RPC (non_forwarding_action, as A36 requires of a
// server) and a DownstreamTlsContext that requires a client certificate
// and takes the server's SVID and the trust bundle from the certificate
// provider instance CertProviderInstance (A29), and the service's
// authorization policies as an RBAC HTTP filter (A41). The server must
// listen on the address it registers (0.0.0.0 does not match a registered
// IP).
//
// Envoy and the shoal sidecar never get these listeners: an Envoy without
// a role would bind every one of them.
const GRPCServerListenerPrefix = grpcbootstrap.ServerListenerPrefix

// grpcServerAddrs returns the IP:port of every proxyless gRPC server
// endpoint (protocol grpc, tls mtls), sorted.
func grpcServerAddrs(services map[string][]registry.Endpoint) []string {
	var out []string
	for _, eps := range services {
		for _, ep := range eps {
			if ep.Protocol == registry.ProtocolGRPC && ep.TLS == registry.TLSMutual {
				out = append(out, ep.HostPort())
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// grpcServerListeners returns the listeners of the proxyless gRPC servers,
// for clients that are not HTTP proxies.
func (t *translator) grpcServerListeners() []types.Resource {
	if t.caps.HTTPProxy {
		return nil
	}
	var out []types.Resource
	for _, svc := range sortedKeys(t.services) {
		for _, ep := range t.services[svc] {
			if ep.Protocol != registry.ProtocolGRPC || ep.TLS != registry.TLSMutual {
				continue
			}
			out = append(out, grpcServerListener(ep, t.serviceRBAC(svc)))
		}
	}
	return out
}

// grpcServerListener is the listener of the gRPC server ep; rbac, if not
// nil, is its service's authorization policies, enforced by gRPC's RBAC
// filter (gRFC A41) on the peer certificate's URI SAN.
func grpcServerListener(ep registry.Endpoint, rbac *rbacv3.RBAC) *listenerv3.Listener {
	name := GRPCServerListenerPrefix + ep.HostPort()
	filters := routerFilter()
	if rbac != nil {
		filters = append([]*hcmv3.HttpFilter{{
			Name:       RBACFilterName,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&rbacfilterv3.RBAC{Rules: rbac})},
		}}, filters...)
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: name,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    name,
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_NonForwardingAction{NonForwardingAction: &routev3.NonForwardingAction{}},
				}},
			}},
		}},
		HttpFilters: filters,
	}
	tlsCtx := &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{
				InstanceName: CertProviderInstance, CertificateName: certNameIdentity,
			},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				CaCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{
					InstanceName: CertProviderInstance, CertificateName: certNameRoot,
				},
			}},
		},
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddress(ep.Address, uint32(ep.Port)),
		FilterChains: []*listenerv3.FilterChain{{
			Name: name,
			Filters: []*listenerv3.Filter{{
				Name:       wellknown.HTTPConnectionManager,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
			}},
			TransportSocket: &corev3.TransportSocket{
				Name:       tlsTransportSocket,
				ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(tlsCtx)},
			},
		}},
	}
}
