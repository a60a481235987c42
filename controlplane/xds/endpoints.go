package xds

import (
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/shoal-mesh/shoal/registry"
)

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// loadAssignments returns one ClusterLoadAssignment per service and per
// subset, sorted by name. A service without endpoints gets an empty one, so
// that every EDS cluster has its assignment.
func (t *translator) loadAssignments() []types.Resource {
	out := make([]types.Resource, 0, len(t.subsets))
	for _, name := range sortedKeys(t.subsets) {
		out = append(out, loadAssignment(name, subsetEndpoints(t.services, t.subsets[name])))
	}
	return out
}

// subsetEndpoints are the endpoints of ss, sorted by id.
func subsetEndpoints(services map[string][]registry.Endpoint, ss subset) []registry.Endpoint {
	var eps []registry.Endpoint
	for _, ep := range services[ss.service] {
		if hasLabels(ep.Metadata, ss.labels) {
			eps = append(eps, ep)
		}
	}
	return eps
}

func hasLabels(md, labels map[string]string) bool {
	for k, v := range labels {
		if got, ok := md[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// loadAssignment groups eps (sorted by id) into one locality per zone, in
// zone order. Each locality's weight is the sum of its endpoints' weights,
// never zero: gRPC drops localities without a weight.
func loadAssignment(name string, eps []registry.Endpoint) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	byZone := make(map[string][]registry.Endpoint)
	for _, ep := range eps {
		byZone[zoneOf(ep.Instance)] = append(byZone[zoneOf(ep.Instance)], ep)
	}
	for _, zone := range sortedKeys(byZone) {
		loc := &endpointv3.LocalityLbEndpoints{Locality: &corev3.Locality{Zone: zone}}
		var sum uint32
		for _, ep := range byZone[zone] {
			w := weightOf(ep.Instance)
			sum += w
			loc.LbEndpoints = append(loc.LbEndpoints, lbEndpoint(ep, w))
		}
		loc.LoadBalancingWeight = wrapperspb.UInt32(sum)
		cla.Endpoints = append(cla.Endpoints, loc)
	}
	return cla
}

func lbEndpoint(ep registry.Endpoint, weight uint32) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: socketAddress(ep.Address, uint32(ep.Port)),
			// Hostname carries the instance id for admin pages
			// (/clusters, config_dump); no client routes on it.
			Hostname: ep.ID,
		}},
		HealthStatus:        healthStatus(ep.Health),
		Metadata:            endpointMetadata(ep.Instance),
		LoadBalancingWeight: wrapperspb.UInt32(weight),
	}
}

func socketAddress(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       addr,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// healthStatus maps the mesh's health to EDS: only UNKNOWN and HEALTHY are
// routable for Envoy and gRPC, matching registry.Health.Routable.
func healthStatus(h registry.Health) corev3.HealthStatus {
	switch h {
	case registry.HealthUnknown:
		return corev3.HealthStatus_UNKNOWN
	case registry.HealthHealthy:
		return corev3.HealthStatus_HEALTHY
	case registry.HealthDraining:
		return corev3.HealthStatus_DRAINING
	}
	return corev3.HealthStatus_UNHEALTHY
}

func zoneOf(in *registry.Instance) string {
	if in.Zone == "" {
		return registry.DefaultZone
	}
	return in.Zone
}

// weightOf is the instance weight, 1-MaxWeight (0 means the default).
func weightOf(in *registry.Instance) uint32 {
	switch {
	case in.Weight <= 0:
		return registry.DefaultWeight
	case in.Weight > registry.MaxWeight:
		return registry.MaxWeight
	}
	return uint32(in.Weight)
}
