package xds

import (
	"fmt"
	"maps"
	"slices"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// Memo translates updates for every capability profile, reusing what the
// last update already translated, so that an endpoint change costs
// O(changed load assignments) instead of a translation of every resource
// for every profile (issue 7: with 1,000 services that was most of the CPU
// of a push after the logging fix). Its results equal Translate's for each
// profile (TestMemoMatchesTranslate). It is owned by the Server's Run
// goroutine.
//
// Listeners, routes and clusters read the routes and, of the endpoints,
// only which services have some and whether each speaks HTTP/2 (the
// shape): while the shape is unchanged they are reused. A load assignment
// reads only its endpoints: while they are the same instances with the
// same health it is reused. Reuse is by identity: Input is not modified
// after Update, and the registry decodes a changed instance or route into
// a new value, so the same pointer means the same content; a caller that
// builds equal values anew only loses the reuse.
type Memo struct {
	// valid is false until a translation passed its check.
	valid bool
	shape shape
	// subsets are the load assignments of the shape, by name.
	subsets map[string]subset
	// byProfile holds each profile's listeners, routes and clusters.
	byProfile map[string]*Resources
	statuses  []*shoalv1.RouteStatus
	// clas are the load assignments by name, with the endpoints they were
	// built from.
	clas map[string]memoCLA
}

// shape is what of an Input listeners, routes and clusters depend on.
type shape struct {
	routes      []*shoalv1.Route
	policies    []*shoalv1.AuthorizationPolicy
	services    []serviceShape // sorted by name
	trustDomain string
	// grpcServers are the proxyless gRPC servers' addresses, which name
	// listeners (grpcServerAddrs).
	grpcServers []string
}

type serviceShape struct {
	name  string
	http2 bool
	// mtls: some instance is an mTLS endpoint; allMTLS: every one is.
	mtls, allMTLS bool
}

type memoCLA struct {
	eps []endpointKey
	cla *endpointv3.ClusterLoadAssignment
}

// endpointKey is what a load assignment reads of an endpoint.
type endpointKey struct {
	in     *registry.Instance
	health registry.Health
}

func shapeOf(routes []*shoalv1.Route, policies []*shoalv1.AuthorizationPolicy, services map[string][]registry.Endpoint, trustDomain string) shape {
	sh := shape{routes: routes, policies: policies, services: make([]serviceShape, 0, len(services)), trustDomain: trustDomain,
		grpcServers: grpcServerAddrs(services)}
	t := translator{services: services}
	for _, name := range sortedKeys(services) {
		sh.services = append(sh.services, serviceShape{name: name, http2: t.speaksHTTP2(name), mtls: t.hasMTLS(name), allMTLS: t.allMTLS(name)})
	}
	return sh
}

func (sh shape) equal(o shape) bool {
	return slices.Equal(sh.routes, o.routes) && slices.Equal(sh.policies, o.policies) && slices.Equal(sh.services, o.services) && sh.trustDomain == o.trustDomain &&
		slices.Equal(sh.grpcServers, o.grpcServers)
}

// translate returns each profile's resources for in, keyed by profile, and
// the route statuses. It fails, remembering nothing, when a translation
// does not pass Resources.Check. The results must not be modified.
func (m *Memo) Translate(in Input, profiles []Capabilities) (map[string]*Resources, []*shoalv1.RouteStatus, error) {
	services := indexEndpoints(in.Endpoints)
	sh := shapeOf(in.Routes, in.Policies, services, in.TrustDomain)
	full := !m.valid || !sh.equal(m.shape)
	byProfile, statuses, subsets := m.byProfile, m.statuses, m.subsets
	if full {
		byProfile, statuses, subsets = translateShape(in.Routes, indexPolicies(in.Policies), services, profiles, in.TrustDomain)
	}
	clas, next, fresh := m.loadAssignments(services, subsets)
	out := make(map[string]*Resources, len(byProfile))
	for profile, r := range byProfile {
		res := *r
		res.Endpoints = clas
		out[profile] = &res
		if !full {
			continue
		}
		if err := res.Check(); err != nil {
			return nil, nil, fmt.Errorf("profile %s: %w", profile, err)
		}
	}
	if !full {
		// Everything else passed Check when it was translated.
		for _, cla := range fresh {
			if err := cla.ValidateAll(); err != nil {
				return nil, nil, fmt.Errorf("%s %q: %w", endpointType, cla.GetClusterName(), err)
			}
		}
	}
	m.valid, m.shape, m.subsets, m.byProfile, m.statuses, m.clas = true, sh, subsets, byProfile, statuses, next
	return out, statuses, nil
}

// translateShape translates the listeners, routes and clusters of every
// profile, and returns them with the route statuses and the load
// assignments they read.
func translateShape(rs []*shoalv1.Route, policies map[string][]*shoalv1.AuthorizationPolicy, services map[string][]registry.Endpoint, profiles []Capabilities, trustDomain string) (map[string]*Resources, []*shoalv1.RouteStatus, map[string]subset) {
	routes, statuses := compileRoutes(rs)
	routes = fitRoutes(services, routes, statuses)
	out := make(map[string]*Resources, len(profiles))
	var subsets map[string]subset
	for _, caps := range profiles {
		t := newIndexedTranslator(maps.Clone(services), caps)
		t.trustDomain = trustDomain
		t.policies = policies
		t.addServices(routes)
		out[caps.Profile] = &Resources{Listeners: t.listeners(), Routes: t.routeConfigs(routes), Clusters: t.clusters()}
		subsets = t.subsets // the same for every profile
	}
	return out, statuses, subsets
}

// loadAssignments returns the load assignments of subsets, sorted by name,
// reusing the remembered ones whose endpoints are unchanged; next is what
// to remember and fresh the ones built anew.
func (m *Memo) loadAssignments(services map[string][]registry.Endpoint, subsets map[string]subset) (out []types.Resource, next map[string]memoCLA, fresh []*endpointv3.ClusterLoadAssignment) {
	names := sortedKeys(subsets)
	out = make([]types.Resource, 0, len(names))
	next = make(map[string]memoCLA, len(names))
	for _, name := range names {
		eps := subsetEndpoints(services, subsets[name])
		keys := make([]endpointKey, len(eps))
		for i, ep := range eps {
			keys[i] = endpointKey{in: ep.Instance, health: ep.Health}
		}
		mc, ok := m.clas[name]
		if !ok || !slices.Equal(mc.eps, keys) {
			mc = memoCLA{eps: keys, cla: loadAssignment(name, eps)}
			fresh = append(fresh, mc.cla)
		}
		next[name] = mc
		out = append(out, mc.cla)
	}
	return out, next, fresh
}
