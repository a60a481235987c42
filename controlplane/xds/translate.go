package xds

import (
	"cmp"
	"slices"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// Input is everything the translation reads: every registered instance with
// its current health, and every stored route. Translate neither modifies
// nor retains it.
type Input struct {
	Endpoints []registry.Endpoint
	Routes    []*shoalv1.Route
	// Policies are the authorization policies, each put on the virtual
	// host of its service's RouteConfiguration (see setRBAC).
	Policies []*shoalv1.AuthorizationPolicy
	// TrustDomain is the SPIFFE trust domain of workload identities (the
	// SANs mTLS clusters require); zero means shoal.local.
	TrustDomain string
}

// Resources are the xDS resources of one translation, each slice sorted by
// resource name. They must not be modified: the caches share them.
type Resources struct {
	Listeners []types.Resource
	Routes    []types.Resource
	Clusters  []types.Resource
	Endpoints []types.Resource
}

// ByType indexes the resources by type URL.
func (r *Resources) ByType() map[resource.Type][]types.Resource {
	return map[resource.Type][]types.Resource{
		resource.ListenerType: r.Listeners,
		resource.RouteType:    r.Routes,
		resource.ClusterType:  r.Clusters,
		resource.EndpointType: r.Endpoints,
	}
}

// Translate turns in into xDS resources for a client with capabilities
// caps. It is pure and deterministic: equal inputs (in any order) give
// byte-identical resources. A route that cannot be translated is left out
// and reported with Accepted false; it never affects the other routes. The
// statuses are sorted by route name and do not depend on caps.
func Translate(in Input, caps Capabilities) (*Resources, []*shoalv1.RouteStatus) {
	t := newTranslator(in, caps)
	routes, statuses := compileRoutes(in.Routes)
	routes = fitRoutes(indexEndpoints(in.Endpoints), routes, statuses)
	t.addServices(routes)
	out := &Resources{
		Listeners: t.listeners(),
		Routes:    t.routeConfigs(routes),
		Clusters:  t.clusters(),
		Endpoints: t.loadAssignments(),
	}
	return out, statuses
}

// translator holds the indexed input of one translation.
type translator struct {
	caps Capabilities
	// trustDomain is Input.TrustDomain.
	trustDomain string
	// policies are Input.Policies by service (indexPolicies).
	policies map[string][]*shoalv1.AuthorizationPolicy
	// services maps a service name to its endpoints, sorted by id, without
	// duplicate addresses; services named only by routes have none.
	services map[string][]registry.Endpoint
	// subsets maps a load assignment name to its service and labels.
	subsets map[string]subset
	// clusterSpecs maps a cluster name to its load assignment and policy.
	clusterSpecs map[string]clusterSpec
}

type subset struct {
	service string
	labels  map[string]string
}

type clusterSpec struct {
	cla  string
	kind lbKind
	// balance is hash_balance_factor (consistent hashing only; 0: none).
	balance uint32
	// tune is the rule's proxy settings; nil: the defaults.
	tune *tuning
}

func newTranslator(in Input, caps Capabilities) *translator {
	t := newIndexedTranslator(indexEndpoints(in.Endpoints), caps)
	t.trustDomain = in.TrustDomain
	t.policies = indexPolicies(in.Policies)
	return t
}

// newIndexedTranslator starts a translation from endpoints already indexed
// by indexEndpoints; services becomes the translator's and must not be
// used elsewhere.
func newIndexedTranslator(services map[string][]registry.Endpoint, caps Capabilities) *translator {
	t := &translator{
		caps:         caps,
		services:     services,
		subsets:      make(map[string]subset),
		clusterSpecs: make(map[string]clusterSpec),
	}
	for svc := range t.services {
		t.addSubset(svc, nil)
	}
	return t
}

// addSubset registers a load assignment and the service's default cluster.
func (t *translator) addSubset(service string, labels map[string]string) string {
	name := subsetName(service, labels)
	if _, ok := t.subsets[name]; !ok {
		t.subsets[name] = subset{service: service, labels: labels}
		t.clusterSpecs[name] = clusterSpec{cla: name, kind: lbRoundRobin}
	}
	return name
}

// addServices registers the services, subsets and cluster variants the
// accepted routes use, as seen by this translator's client.
func (t *translator) addServices(routes []*compiledRoute) {
	for _, r := range routes {
		for _, rule := range r.rules {
			kind := t.caps.lbKind(rule.strategy)
			for _, d := range rule.dests {
				if _, ok := t.services[d.service]; !ok {
					t.services[d.service] = nil
					t.addSubset(d.service, nil)
				}
				cla := t.addSubset(d.service, d.subset)
				balance := boundedLoad(kind, rule.balance)
				t.clusterSpecs[variantName(cla, kind, balance, rule.tune)] = clusterSpec{cla: cla, kind: kind, balance: balance, tune: rule.tune}
			}
		}
	}
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// indexEndpoints groups endpoints by service, sorted by id. Endpoints that
// no client could take are skipped: a nil or invalid instance, and an
// address that is not an IP (Envoy's EDS requires IP addresses and NACKs
// host names). Of several instances on one address (a re-registration
// under a new id) the routable one, then the lowest id, is kept: gRPC NACKs
// a load assignment with a duplicate address. Of duplicate ids, likewise.
func indexEndpoints(eps []registry.Endpoint) map[string][]registry.Endpoint {
	sorted := preferenceOrder(eps)
	out := make(map[string][]registry.Endpoint)
	seen := make(map[string]bool)
	for _, ep := range sorted {
		addr, id := ep.Service+"|"+ep.HostPort(), ep.Service+"/"+ep.ID
		if seen[addr] || seen[id] {
			continue
		}
		seen[addr], seen[id] = true, true
		out[ep.Service] = append(out[ep.Service], ep)
	}
	for svc, list := range out {
		slices.SortFunc(list, func(a, b registry.Endpoint) int { return cmp.Compare(a.ID, b.ID) })
		out[svc] = list
	}
	return out
}

// preferenceOrder returns the endpoints a client could take (see
// indexEndpoints), sorted by service and then by which of several on one
// address the control plane serves: a routable one, then the lowest id.
func preferenceOrder(eps []registry.Endpoint) []registry.Endpoint {
	sorted := make([]registry.Endpoint, 0, len(eps))
	for _, ep := range eps {
		if ep.Instance == nil || ep.Validate() != nil || !isIP(ep.Address) {
			continue
		}
		sorted = append(sorted, ep)
	}
	slices.SortFunc(sorted, func(a, b registry.Endpoint) int {
		return cmp.Or(
			cmp.Compare(a.Service, b.Service),
			compareBool(a.Health.Routable(), b.Health.Routable()),
			cmp.Compare(a.ID, b.ID),
			cmp.Compare(a.HostPort(), b.HostPort()),
			cmp.Compare(a.Health, b.Health),
			cmp.Compare(a.Zone, b.Zone),
			cmp.Compare(a.Weight, b.Weight),
			cmp.Compare(a.Protocol, b.Protocol),
		)
	})
	return sorted
}

// compareBool orders true before false.
func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}
