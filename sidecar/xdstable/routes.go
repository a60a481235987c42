package xdstable

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shoal-mesh/shoal/sidecar/internal/xdswire"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// convertRoute converts one Envoy route. Redirects, direct responses and
// other actions shoal's proxy does not implement are an error.
func convertRoute(r *xdswire.Route) (route.Route, error) {
	out := route.Route{Name: r.Name}
	m, err := match(r.Match)
	if err != nil {
		return out, err
	}
	out.Match = m
	a := r.Route
	if a == nil {
		return out, errors.New("only route actions are supported")
	}
	switch {
	case a.Cluster != "":
		out.Clusters = []route.WeightedCluster{{Name: a.Cluster, Weight: 1}}
	case a.WeightedClusters != nil:
		for _, wc := range a.WeightedClusters.Clusters {
			var w uint32
			if wc.Weight != nil {
				w = *wc.Weight
			}
			out.Clusters = append(out.Clusters, route.WeightedCluster{Name: wc.Name, Weight: w})
		}
	default:
		return out, errors.New("route action without cluster or weighted_clusters")
	}
	out.Timeout = DefaultRouteTimeout
	if a.Timeout != nil {
		out.Timeout = a.Timeout.Std()
	}
	if rp := a.RetryPolicy; rp != nil {
		p, err := retryPolicy(rp)
		if err != nil {
			return out, err
		}
		out.Retry = p
	}
	for _, hp := range a.HashPolicy {
		switch {
		case hp.ConnectionProperties != nil:
			out.Hash = append(out.Hash, route.HashPolicy{Kind: route.HashSourceIP, Terminal: hp.Terminal})
		case hp.Header != nil:
			out.Hash = append(out.Hash, route.HashPolicy{Kind: route.HashHeader, Name: hp.Header.HeaderName, Terminal: hp.Terminal})
		case hp.Cookie != nil:
			out.Hash = append(out.Hash, route.HashPolicy{Kind: route.HashCookie, Name: hp.Cookie.Name, Terminal: hp.Terminal})
		}
		// Other hash sources (filter state, query parameters) yield no key
		// here; the picker then falls back to a random pick, as Envoy does.
	}
	return out, nil
}

func retryPolicy(rp *xdswire.RetryPolicy) (*route.RetryPolicy, error) {
	on, err := route.ParseRetryOn(rp.RetryOn)
	if err != nil {
		return nil, err
	}
	p := &route.RetryPolicy{On: on, NumRetries: u32(rp.NumRetries)}
	if rp.NumRetries != nil && *rp.NumRetries == 0 {
		return nil, nil // explicitly no retries beyond connect failures
	}
	if rp.PerTryTimeout != nil {
		p.PerTryTimeout = rp.PerTryTimeout.Std()
	}
	for _, c := range rp.RetriableStatusCodes {
		p.StatusCodes = append(p.StatusCodes, int(c))
	}
	return p, nil
}

func match(m *xdswire.RouteMatch) (route.Match, error) {
	var out route.Match
	if m == nil {
		return out, nil
	}
	switch {
	case m.Prefix != "":
		out.PathPrefix = m.Prefix
	case m.Path != "":
		out.Path = m.Path
	case m.SafeRegex != nil:
		out.PathRegex = m.SafeRegex.Regex
	case m.PathSeparatedPrefix != "":
		out.PathPrefix = m.PathSeparatedPrefix
	}
	if m.CaseSensitive != nil && !*m.CaseSensitive {
		return out, errors.New("case-insensitive path matching is not supported")
	}
	for i := range m.Headers {
		h := &m.Headers[i]
		if h.Name == ":method" {
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
func methodsOf(h *xdswire.HeaderMatcher) ([]string, error) {
	sm := h.StringMatch
	if h.InvertMatch {
		return nil, errors.New("inverted :method match is not supported")
	}
	switch {
	case sm != nil && sm.Exact != "":
		return []string{sm.Exact}, nil
	case sm != nil && sm.SafeRegex != nil:
		re := sm.SafeRegex.Regex
		re = strings.TrimSuffix(strings.TrimPrefix(re, "^("), ")$")
		methods := strings.Split(re, "|")
		for _, m := range methods {
			if m == "" || strings.ContainsAny(m, `^$()[]\.*+?{}`) {
				return nil, fmt.Errorf(":method regex %q is not a list of methods", sm.SafeRegex.Regex)
			}
		}
		return methods, nil
	}
	return nil, errors.New(":method must be an exact or alternation match")
}

func headerMatch(h *xdswire.HeaderMatcher) (route.HeaderMatch, error) {
	out := route.HeaderMatch{Name: h.Name, Invert: h.InvertMatch}
	switch {
	case h.PresentMatch:
		out.Present = true
	case h.StringMatch != nil:
		sm := h.StringMatch
		if sm.IgnoreCase {
			return out, fmt.Errorf("header %q: ignore_case is not supported", h.Name)
		}
		setString(&out, sm)
	case h.ExactMatch != "":
		out.Exact = h.ExactMatch
	case h.PrefixMatch != "":
		out.Prefix = h.PrefixMatch
	case h.SuffixMatch != "":
		out.Suffix = h.SuffixMatch
	case h.ContainsMatch != "":
		out.Contains = h.ContainsMatch
	case h.SafeRegexMatch != nil:
		out.Regex = h.SafeRegexMatch.Regex
	default:
		out.Present = true
	}
	return out, nil
}

func setString(out *route.HeaderMatch, sm *xdswire.StringMatcher) {
	switch sm.Specifier {
	case "exact":
		out.Exact = sm.Exact
	case "prefix":
		out.Prefix = sm.Prefix
	case "suffix":
		out.Suffix = sm.Suffix
	case "contains":
		out.Contains = sm.Contains
	case "safe_regex":
		out.Regex = sm.SafeRegex.Regex
	}
}
