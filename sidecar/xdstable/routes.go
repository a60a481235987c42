package xdstable

import (
	"errors"
	"fmt"
	"strings"

	routev3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/route/v3"
	matcherv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/type/matcher/v3"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// convertRoute converts one Envoy route. Redirects, direct responses and
// other actions shoal's proxy does not implement are an error.
func convertRoute(r *routev3.Route) (route.Route, error) {
	out := route.Route{Name: r.GetName()}
	m, err := match(r.GetMatch())
	if err != nil {
		return out, err
	}
	out.Match = m
	a := r.GetRoute()
	if a == nil {
		return out, errors.New("only route actions are supported")
	}
	switch {
	case a.GetCluster() != "":
		out.Clusters = []route.WeightedCluster{{Name: a.GetCluster(), Weight: 1}}
	case a.GetWeightedClusters() != nil:
		for _, wc := range a.GetWeightedClusters().GetClusters() {
			out.Clusters = append(out.Clusters, route.WeightedCluster{Name: wc.GetName(), Weight: wc.GetWeight().GetValue()})
		}
	default:
		return out, errors.New("route action without cluster or weighted_clusters")
	}
	// Presence matters: no timeout is Envoy's default, an explicit 0s
	// disables the route timeout.
	out.Timeout = DefaultRouteTimeout
	if t := a.GetTimeout(); t != nil {
		out.Timeout = t.AsDuration()
	}
	if rp := a.GetRetryPolicy(); rp != nil {
		p, err := retryPolicy(rp)
		if err != nil {
			return out, err
		}
		out.Retry = p
	}
	for _, hp := range a.GetHashPolicy() {
		switch s := hp.GetPolicySpecifier().(type) {
		case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
			out.Hash = append(out.Hash, route.HashPolicy{Kind: route.HashSourceIP, Terminal: hp.GetTerminal()})
		case *routev3.RouteAction_HashPolicy_Header_:
			out.Hash = append(out.Hash, route.HashPolicy{Kind: route.HashHeader, Name: s.Header.GetHeaderName(), Terminal: hp.GetTerminal()})
		case *routev3.RouteAction_HashPolicy_Cookie_:
			out.Hash = append(out.Hash, route.HashPolicy{Kind: route.HashCookie, Name: s.Cookie.GetName(), Terminal: hp.GetTerminal()})
		}
		// Other hash sources (filter state, query parameters) yield no key
		// here; the picker then falls back to a random pick, as Envoy does.
	}
	return out, nil
}

func retryPolicy(rp *routev3.RetryPolicy) (*route.RetryPolicy, error) {
	on, err := route.ParseRetryOn(rp.GetRetryOn())
	if err != nil {
		return nil, err
	}
	p := &route.RetryPolicy{On: on, NumRetries: u32(rp.GetNumRetries())}
	if n := rp.GetNumRetries(); n != nil && n.GetValue() == 0 {
		return nil, nil // explicitly no retries beyond connect failures
	}
	p.PerTryTimeout = std(rp.GetPerTryTimeout())
	for _, c := range rp.GetRetriableStatusCodes() {
		p.StatusCodes = append(p.StatusCodes, int(c))
	}
	return p, nil
}

func match(m *routev3.RouteMatch) (route.Match, error) {
	var out route.Match
	if m == nil {
		return out, nil
	}
	switch s := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.PathPrefix = s.Prefix
	case *routev3.RouteMatch_Path:
		out.Path = s.Path
	case *routev3.RouteMatch_SafeRegex:
		out.PathRegex = s.SafeRegex.GetRegex()
	case *routev3.RouteMatch_PathSeparatedPrefix:
		out.PathPrefix = s.PathSeparatedPrefix
	}
	if cs := m.GetCaseSensitive(); cs != nil && !cs.GetValue() {
		return out, errors.New("case-insensitive path matching is not supported")
	}
	for _, h := range m.GetHeaders() {
		if h.GetName() == ":method" {
			methods, err := methodsOf(h)
			if err != nil {
				return out, err
			}
			out.Methods = methods
			continue
		}
		hm, err := headerMatch(h)
		if err != nil {
			return out, err
		}
		out.Headers = append(out.Headers, hm)
	}
	return out, nil
}

// methodsOf reads the :method matcher the translator emits: an exact method
// or a regex alternation "GET|POST".
func methodsOf(h *routev3.HeaderMatcher) ([]string, error) {
	sm := h.GetStringMatch()
	if h.GetInvertMatch() {
		return nil, errors.New("inverted :method match is not supported")
	}
	switch {
	case sm.GetExact() != "":
		return []string{sm.GetExact()}, nil
	case sm.GetSafeRegex() != nil:
		re := sm.GetSafeRegex().GetRegex()
		re = strings.TrimSuffix(strings.TrimPrefix(re, "^("), ")$")
		methods := strings.Split(re, "|")
		for _, m := range methods {
			if m == "" || strings.ContainsAny(m, `^$()[]\.*+?{}`) {
				return nil, fmt.Errorf(":method regex %q is not a list of methods", sm.GetSafeRegex().GetRegex())
			}
		}
		return methods, nil
	}
	return nil, errors.New(":method must be an exact or alternation match")
}

func headerMatch(h *routev3.HeaderMatcher) (route.HeaderMatch, error) {
	out := route.HeaderMatch{Name: h.GetName(), Invert: h.GetInvertMatch()}
	switch {
	case h.GetPresentMatch():
		out.Present = true
	case h.GetStringMatch() != nil:
		sm := h.GetStringMatch()
		if sm.GetIgnoreCase() {
			return out, fmt.Errorf("header %q: ignore_case is not supported", h.GetName())
		}
		setString(&out, sm)
	case h.GetExactMatch() != "":
		out.Exact = h.GetExactMatch()
	case h.GetPrefixMatch() != "":
		out.Prefix = h.GetPrefixMatch()
	case h.GetSuffixMatch() != "":
		out.Suffix = h.GetSuffixMatch()
	case h.GetContainsMatch() != "":
		out.Contains = h.GetContainsMatch()
	case h.GetSafeRegexMatch() != nil:
		out.Regex = h.GetSafeRegexMatch().GetRegex()
	default:
		out.Present = true
	}
	return out, nil
}

func setString(out *route.HeaderMatch, sm *matcherv3.StringMatcher) {
	switch p := sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.Exact = p.Exact
	case *matcherv3.StringMatcher_Prefix:
		out.Prefix = p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		out.Suffix = p.Suffix
	case *matcherv3.StringMatcher_Contains:
		out.Contains = p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		out.Regex = p.SafeRegex.GetRegex()
	}
}
