package xdsclient

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// mesh describes the resources of a test snapshot: services with their
// endpoint ports. Every service gets an EDS cluster, a CLA and a route.
type mesh struct {
	version  string
	services map[string][]uint32
	// badCluster, if set, is added as a cluster failing ValidateAll.
	badCluster string
	// ghostEDS, if set, is an EDS cluster whose CLA is never sent.
	ghostEDS string
}

func (m mesh) snapshot() *cache.Snapshot {
	var clusters, clas []types.Resource
	var hosts []*routev3.VirtualHost
	for _, svc := range sortedKeys(m.services) {
		clusters = append(clusters, edsCluster(svc))
		clas = append(clas, cla(svc, m.services[svc]...))
		hosts = append(hosts, virtualHost(svc))
	}
	if m.badCluster != "" {
		c := edsCluster(m.badCluster)
		c.ConnectTimeout = durationpb.New(-time.Second) // must be > 0
		clusters = append(clusters, c)
	}
	if m.ghostEDS != "" {
		clusters = append(clusters, edsCluster(m.ghostEDS))
	}
	snap, err := cache.NewSnapshot(m.version, map[string][]types.Resource{
		ListenerType: {httpListener("outbound")},
		RouteType:    {&routev3.RouteConfiguration{Name: "outbound", VirtualHosts: hosts}},
		ClusterType:  clusters,
		EndpointType: clas,
	})
	if err != nil {
		panic(err) // fixtures are static
	}
	return snap
}

func sortedKeys(m map[string][]uint32) []string {
	set := map[string]bool{}
	for k := range m {
		set[k] = true
	}
	return sortedNames(set)
}

func httpListener(name string) *listenerv3.Listener {
	router, _ := anypb.New(&routerv3.Router{})
	hcm, _ := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: name,
			ConfigSource:    adsSource(),
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
		}},
	})
	return &listenerv3.Listener{
		Name: name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 15001},
		}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm},
		}}}},
	}
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func virtualHost(svc string) *routev3.VirtualHost {
	return &routev3.VirtualHost{
		Name:    svc,
		Domains: []string{svc},
		Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: svc},
			}},
		}},
	}
}

func edsCluster(svc string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 svc,
		ConnectTimeout:       durationpb.New(time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: svc},
	}
}

func cla(svc string, ports ...uint32) *endpointv3.ClusterLoadAssignment {
	var lbs []*endpointv3.LbEndpoint
	for _, p := range ports {
		lbs = append(lbs, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
			Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{
					Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p},
				},
			}}},
		}})
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: svc,
		Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}},
	}
}

// ports returns the endpoint ports of svc in s, or an error string.
func ports(s *Snapshot, svc string) string {
	c, err := s.ClusterLoadAssignment(svc)
	if err != nil || c == nil {
		return "none"
	}
	out := ""
	for _, l := range c.GetEndpoints() {
		for _, e := range l.GetLbEndpoints() {
			out += fmt.Sprintf("%d,", e.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue())
		}
	}
	return out
}
