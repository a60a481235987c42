package xds

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
)

// Listener addresses of the proxy listeners. The shoal sidecar and gateway
// bind their own flags (--outbound, --listen) and take only the listeners'
// routing; an Envoy bootstrapped against shoal binds these.
const (
	OutboundAddress = "127.0.0.1"
	OutboundPort    = 15001
	InboundAddress  = "0.0.0.0"
	InboundPort     = 15006
	GatewayAddress  = "0.0.0.0"
	GatewayPort     = 8080
)

// listeners returns the proxy listeners and one API listener per service,
// sorted by name.
func (t *translator) listeners() []types.Resource {
	out := []types.Resource{
		t.proxyListener(ListenerOutbound, OutboundAddress, OutboundPort, rdsManager(ListenerOutbound, RouteOutbound)),
		t.proxyListener(ListenerInbound, InboundAddress, InboundPort, inboundManager()),
		t.proxyListener(ListenerGateway, GatewayAddress, GatewayPort, rdsManager(ListenerGateway, RouteGateway)),
	}
	for svc := range t.services {
		// gRPC resolves xds:///<svc> through the API listener <svc>
		// (gRFC A27).
		out = append(out, &listenerv3.Listener{
			Name: svc,
			ApiListener: &listenerv3.ApiListener{
				ApiListener: mustAny(rdsManager(svc, svc)),
			},
		})
	}
	out = append(out, t.grpcServerListeners()...)
	sortByName(out)
	return out
}

func (t *translator) proxyListener(name, addr string, port uint32, hcm *hcmv3.HttpConnectionManager) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddress(addr, port),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       wellknown.HTTPConnectionManager,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
			}},
		}},
	}
}

// rdsManager is an HTTP connection manager reading route configuration
// route over ADS, with only the router filter.
func rdsManager(statPrefix, route string) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		StatPrefix: statPrefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: route,
		}},
		HttpFilters: routerFilter(),
	}
}

// inboundManager routes every request to the proxy's own app: the inline
// route configuration names LocalAppCluster, which each proxy defines.
func inboundManager() *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		StatPrefix: ListenerInbound,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: ListenerInbound,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    ListenerInbound,
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: LocalAppCluster},
					}},
				}},
			}},
		}},
		HttpFilters: routerFilter(),
	}
}

func routerFilter() []*hcmv3.HttpFilter {
	return []*hcmv3.HttpFilter{{
		Name:       wellknown.Router,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
	}}
}
