package xds

import (
	"fmt"
	"maps"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-mesh/shoal/internal/xdslimit"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// maxRouteConfigBytes bounds one client's route configurations together:
// a state-of-the-world route response carries all it subscribes to, and it
// must fit xdslimit.MaxMessageSize, the most shoal's proxies accept (1 MiB
// is left for the response's envelope). A variable for tests.
var maxRouteConfigBytes = xdslimit.MaxMessageSize - 1<<20

// fitRoutes returns the longest prefix of routes (accepted, in name order)
// whose route configurations fit maxRouteConfigBytes, and marks the status
// of each route left out. Routes are bounded in total
// (routes.MaxTotalSize), but a route's rules are repeated in the virtual
// host of every group of hosts it shares with other routes (hostGroups), in
// outbound and in gateway, so a few routes sharing a large one's hosts can
// multiply it (issue 16: a response too large for the sidecars stopped
// every later change from reaching them). It measures the Envoy profile's
// configurations, the largest, so the statuses do not depend on the
// client, and only when a cheap over-estimate says the limit may be near;
// then it binary-searches the prefix (leaving a route out never makes the
// configurations larger).
func fitRoutes(services map[string][]registry.Endpoint, routes []*compiledRoute, statuses []*shoalv1.RouteStatus) []*compiledRoute {
	if estimateRouteConfigBytes(routes) <= maxRouteConfigBytes/4 {
		return routes
	}
	size := func(k int) int {
		t := newIndexedTranslator(maps.Clone(services), CapabilitiesEnvoy)
		t.addServices(routes[:k])
		return resourcesSize(t.routeConfigs(routes[:k]))
	}
	all := size(len(routes))
	if all <= maxRouteConfigBytes {
		return routes
	}
	lo, hi := 0, len(routes) // routes[:lo] fit (or lo is 0); routes[:hi] do not
	for hi-lo > 1 {
		if mid := (lo + hi) / 2; size(mid) <= maxRouteConfigBytes {
			lo = mid
		} else {
			hi = mid
		}
	}
	left := make(map[string]bool, len(routes)-lo)
	for _, r := range routes[lo:] {
		left[r.name] = true
	}
	for _, st := range statuses {
		if left[st.GetName()] && st.GetAccepted() {
			st.Accepted, st.Error = false, fmt.Sprintf(
				"left out: with it and the routes before it by name, the route configurations would be over the %d-byte limit of an xDS response (%d bytes with every route: rules repeat in every group of hosts a route shares with others)",
				maxRouteConfigBytes, all)
		}
	}
	return routes[:lo]
}

// estimateRouteConfigBytes is about what routeConfigs makes of routes: each
// host group's virtual host holds the rules of the routes claiming it, in
// outbound, in gateway and in a service's own configuration.
func estimateRouteConfigBytes(routes []*compiledRoute) int {
	sizes := make(map[string]int, len(routes))
	for _, r := range routes {
		sizes[r.name] = r.size
	}
	groups, _ := hostGroups(routes)
	total := 0
	for _, g := range groups {
		seen := map[string]bool{}
		for _, rule := range g.rules {
			if !seen[rule.route] {
				seen[rule.route] = true
				total += sizes[rule.route]
			}
		}
	}
	return 3 * total
}

func resourcesSize(rs []types.Resource) int {
	n := 0
	for _, r := range rs {
		n += proto.Size(r)
	}
	return n
}
