package xds

import (
	"slices"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// channelIDKey is gRPC's filter-state key for hashing on the client
// channel (gRFC A42).
const channelIDKey = "io.grpc.channel_id"

// routeConfigs returns outbound, gateway and one route configuration per
// service, sorted by name. outbound and gateway hold one virtual host per
// host that accepted routes claim (see hostGroups), then one per service no
// route claims by name. No domain is in two virtual hosts: Envoy NACKs
// that.
func (t *translator) routeConfigs(routes []*compiledRoute) []types.Resource {
	groups, byHost := hostGroups(routes)
	var vhosts []*routev3.VirtualHost
	for _, g := range groups {
		vhosts = append(vhosts, t.virtualHost(g.name, g.hosts, g.rules))
	}
	services := sortedKeys(t.services)
	for _, svc := range services {
		if _, ok := byHost[svc]; !ok {
			vhosts = append(vhosts, t.virtualHost("service-"+svc, []string{svc}, defaultRules(svc)))
		}
	}
	out := []types.Resource{
		&routev3.RouteConfiguration{Name: RouteGateway, VirtualHosts: vhosts},
		&routev3.RouteConfiguration{Name: RouteOutbound, VirtualHosts: vhosts},
	}
	for _, svc := range services {
		rules := defaultRules(svc)
		if g, ok := byHost[svc]; ok {
			rules = g.rules
		}
		// A proxyless client's channel has one virtual host; "*" matches
		// whatever authority it dialed.
		vh := t.virtualHost(svc, nil, rules)
		vh.Domains = []string{"*"}
		t.setRBAC(vh, svc)
		out = append(out, &routev3.RouteConfiguration{Name: svc, VirtualHosts: []*routev3.VirtualHost{vh}})
	}
	sortByName(out)
	return out
}

// hostGroup is the virtual host of the hosts claimed by the same routes.
type hostGroup struct {
	// name is the claiming routes' names joined with "+" (route names are
	// DNS labels, so it cannot be another group's name).
	name  string
	hosts []string
	// rules are the rules of every claiming route, in route-name order,
	// each route's rules in their own order.
	rules []*compiledRule
}

// hostGroups gives every host that routes (accepted, in name order) claim
// one virtual host whose rules are the merged rules of the routes claiming
// it. Hosts claimed by exactly the same routes have the same rules and
// share a virtual host, so a route alone on its hosts still gets one
// virtual host named after it. byHost maps each host to its group. Hosts
// map to disjoint domain sets (see domains), so no domain lands in two
// groups.
func hostGroups(routes []*compiledRoute) (groups []*hostGroup, byHost map[string]*hostGroup) {
	claimants := make(map[string][]*compiledRoute)
	var hosts []string // in order of first claim
	for _, r := range routes {
		for _, h := range r.hosts {
			if _, ok := claimants[h]; !ok {
				hosts = append(hosts, h)
			}
			claimants[h] = append(claimants[h], r)
		}
	}
	byName := make(map[string]*hostGroup)
	byHost = make(map[string]*hostGroup, len(hosts))
	for _, h := range hosts {
		names := make([]string, len(claimants[h]))
		for i, r := range claimants[h] {
			names[i] = r.name
		}
		name := strings.Join(names, "+")
		g, ok := byName[name]
		if !ok {
			g = &hostGroup{name: name}
			for _, r := range claimants[h] {
				g.rules = append(g.rules, r.rules...)
			}
			byName[name] = g
			groups = append(groups, g)
		}
		g.hosts = append(g.hosts, h)
		byHost[h] = g
	}
	return groups, byHost
}

// defaultRules route every request for a service no route names to its
// round-robin cluster.
func defaultRules(svc string) []*compiledRule {
	return []*compiledRule{{dests: []dest{{service: svc, weight: 1}}}}
}

func (t *translator) virtualHost(name string, hosts []string, rules []*compiledRule) *routev3.VirtualHost {
	vh := &routev3.VirtualHost{Name: name}
	for _, h := range hosts {
		vh.Domains = append(vh.Domains, domains(h)...)
	}
	for i, rule := range rules {
		vh.Routes = append(vh.Routes, t.route(name, i, rule))
	}
	return vh
}

// route translates a rule. Its name is <route>/<index> of the rule in the
// route it came from (the same in every virtual host that merges it), or
// <vhost>/<i> for a service's default rule.
func (t *translator) route(vhost string, i int, rule *compiledRule) *routev3.Route {
	name := vhost + "/" + strconv.Itoa(i)
	if rule.route != "" {
		name = rule.route + "/" + strconv.Itoa(rule.index)
	}
	kind := t.caps.lbKind(rule.strategy)
	balance := boundedLoad(kind, rule.balance)
	action := &routev3.RouteAction{HashPolicy: t.hashPolicy(rule.hashKey)}
	if len(rule.dests) == 1 {
		d := rule.dests[0]
		action.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: variantName(subsetName(d.service, d.subset), kind, balance, rule.tune)}
	} else {
		wc := &routev3.WeightedCluster{}
		for _, d := range rule.dests {
			wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{
				Name:   variantName(subsetName(d.service, d.subset), kind, balance, rule.tune),
				Weight: wrapperspb.UInt32(d.weight),
			})
		}
		action.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	if t.caps.HTTPProxy {
		// An explicit 0s disables the route timeout (Envoy's meaning), for
		// long uploads, downloads and event streams; no timeout at all
		// gets the default.
		timeout := rule.timeout
		if !rule.timeoutSet {
			timeout = defaultTimeout
		}
		action.Timeout = durationpb.New(timeout)
	}
	action.RetryPolicy = t.retryPolicy(rule.retry)
	return &routev3.Route{
		Name:   name,
		Match:  routeMatch(rule.match),
		Action: &routev3.Route_Route{Route: action},
	}
}

func routeMatch(m *shoalv1.Match) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	switch p := m.GetPath().(type) {
	case *shoalv1.Match_Prefix:
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: p.Prefix}
	case *shoalv1.Match_Exact:
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: p.Exact}
	case *shoalv1.Match_Regex:
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: regexMatcher(p.Regex)}
	}
	if len(m.GetMethods()) > 0 {
		rm.Headers = append(rm.Headers, &routev3.HeaderMatcher{
			Name: ":method",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher(strings.Join(m.GetMethods(), "|"))},
			}},
		})
	}
	for _, h := range m.GetHeaders() {
		rm.Headers = append(rm.Headers, headerMatcher(h))
	}
	return rm
}

func headerMatcher(h *shoalv1.HeaderMatch) *routev3.HeaderMatcher {
	hm := &routev3.HeaderMatcher{Name: strings.ToLower(h.GetName()), InvertMatch: h.GetInvert()}
	var sm *matcherv3.StringMatcher
	switch v := h.GetValue().(type) {
	case *shoalv1.HeaderMatch_Exact:
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v.Exact}}
	case *shoalv1.HeaderMatch_Prefix:
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: v.Prefix}}
	case *shoalv1.HeaderMatch_Regex:
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher(v.Regex)}}
	default:
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
		return hm
	}
	hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: sm}
	return hm
}

func regexMatcher(re string) *matcherv3.RegexMatcher {
	return &matcherv3.RegexMatcher{Regex: re}
}

// hashPolicy maps a hash key to the client's closest supported policy.
func (t *translator) hashPolicy(hk *shoalv1.HashKey) []*routev3.RouteAction_HashPolicy {
	channel := &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_FilterState_{
		FilterState: &routev3.RouteAction_HashPolicy_FilterState{Key: channelIDKey},
	}}
	switch k := hk.GetKey().(type) {
	case *shoalv1.HashKey_SourceIp:
		if !t.caps.SourceIPHash {
			return []*routev3.RouteAction_HashPolicy{channel}
		}
		return []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
			ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true},
		}}}
	case *shoalv1.HashKey_Header:
		return []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: strings.ToLower(k.Header)},
		}}}
	case *shoalv1.HashKey_Cookie:
		if !t.caps.CookieHash {
			return []*routev3.RouteAction_HashPolicy{channel}
		}
		return []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{
			Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: k.Cookie},
		}}}
	}
	return nil
}

// retryPolicy translates a retry policy. Proxies always retry a connection
// failure once on another host (the route model's promise); gRPC clients
// get only the gRPC-status conditions (gRFC A44), and no policy when none
// is left, since gRPC NACKs num_retries 0.
func (t *translator) retryPolicy(r *shoalv1.RetryPolicy) *routev3.RetryPolicy {
	attempts := uint32(r.GetAttempts())
	var on []string
	for _, c := range r.GetRetryOn() {
		if t.caps.HTTPProxy || slices.Contains(grpcRetryOn, c) {
			on = append(on, c)
		}
	}
	if !t.caps.HTTPProxy {
		if attempts == 0 || len(on) == 0 {
			return nil
		}
		return &routev3.RetryPolicy{RetryOn: strings.Join(on, ","), NumRetries: wrapperspb.UInt32(attempts)}
	}
	if attempts == 0 || len(on) == 0 {
		attempts, on = 1, []string{"connect-failure", "refused-stream"}
	}
	rp := &routev3.RetryPolicy{
		RetryOn:    strings.Join(on, ","),
		NumRetries: wrapperspb.UInt32(attempts),
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
			Name:       "envoy.retry_host_predicates.previous_hosts",
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(&previoushostsv3.PreviousHostsPredicate{})},
		}},
		HostSelectionRetryMaxAttempts: 3,
		RetriableStatusCodes:          r.GetRetriableStatusCodes(),
	}
	if d := r.GetPerTryTimeout(); d.AsDuration() > 0 {
		rp.PerTryTimeout = durationpb.New(d.AsDuration())
	}
	return rp
}

// lbKind is the load-balancing policy a client with these capabilities
// gets for a strategy.
func (c Capabilities) lbKind(s shoalv1.Strategy) lbKind {
	switch s {
	case shoalv1.Strategy_STRATEGY_LEAST_REQUEST:
		if c.LeastRequest {
			return lbLeastRequest
		}
	case shoalv1.Strategy_STRATEGY_IP_HASH, shoalv1.Strategy_STRATEGY_RING_HASH:
		return lbRingHash
	case shoalv1.Strategy_STRATEGY_MAGLEV:
		if c.Maglev {
			return lbMaglev
		}
		return lbRingHash
	case shoalv1.Strategy_STRATEGY_RANDOM:
		if c.Random {
			return lbRandom
		}
	case shoalv1.Strategy_STRATEGY_LEAST_LOADED:
		if c.LeastLoaded {
			return lbLeastLoaded
		}
		// The closest policy that still looks at load (issue 17).
		return c.lbKind(shoalv1.Strategy_STRATEGY_LEAST_REQUEST)
	}
	return lbRoundRobin
}

// mustAny wraps a message the translator built; it fails only on a broken
// invariant.
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic("xds: marshal " + err.Error())
	}
	return a
}
