package xds

import (
	"fmt"
	"slices"
	"strings"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// RBACFilterName is the key of a service's authorization policies in the
// typed_per_filter_config of the virtual host of its RouteConfiguration
// (named after the service): Envoy's RBAC HTTP filter.
const RBACFilterName = "envoy.filters.http.rbac"

// indexPolicies groups policies by the service they protect, each group in
// policy-name order.
func indexPolicies(ps []*shoalv1.AuthorizationPolicy) map[string][]*shoalv1.AuthorizationPolicy {
	out := map[string][]*shoalv1.AuthorizationPolicy{}
	for _, p := range ps {
		out[p.GetService()] = append(out[p.GetService()], p)
	}
	for _, g := range out {
		slices.SortFunc(g, func(a, b *shoalv1.AuthorizationPolicy) int { return strings.Compare(a.GetName(), b.GetName()) })
	}
	return out
}

// setRBAC puts the policies of svc on vh as an RBACPerRoute (in an
// optional FilterConfig) allowing what
// any of their rules allows (action ALLOW: a request no policy matches is
// denied). A service without policies gets none: default allow.
func (t *translator) setRBAC(vh *routev3.VirtualHost, svc string) {
	rbac := t.serviceRBAC(svc)
	if rbac == nil {
		return
	}
	// Wrapped in an optional FilterConfig: a proxyless client reads this
	// route configuration too, and one without an RBAC filter (grpc-js)
	// would reject the whole resource for a non-optional unknown override.
	vh.TypedPerFilterConfig = map[string]*anypb.Any{
		RBACFilterName: mustAny(&routev3.FilterConfig{
			Config:     mustAny(&rbacfilterv3.RBACPerRoute{Rbac: &rbacfilterv3.RBAC{Rules: rbac}}),
			IsOptional: true,
		}),
	}
}

// serviceRBAC is the RBAC rules of the policies of svc: allow what any of
// their rules allows. nil when svc has no policy (default allow).
func (t *translator) serviceRBAC(svc string) *rbacv3.RBAC {
	ps := t.policies[svc]
	if len(ps) == 0 {
		return nil
	}
	rbac := &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{}}
	for _, p := range ps {
		for i, r := range p.GetRules() {
			rbac.Policies[fmt.Sprintf("%s/%d", p.GetName(), i)] = &rbacv3.Policy{
				Permissions: []*rbacv3.Permission{permission(r)},
				Principals:  t.principals(r.GetCallers()),
			}
		}
	}
	return rbac
}

// permission is what a rule allows of a request: any of its path prefixes
// and any of its methods (either list empty: any).
func permission(r *shoalv1.AuthorizationRule) *rbacv3.Permission {
	var and []*rbacv3.Permission
	if len(r.GetPaths()) > 0 {
		var or []*rbacv3.Permission
		for _, p := range r.GetPaths() {
			or = append(or, &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
				Rule: &matcherv3.PathMatcher_Path{Path: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p}}},
			}}})
		}
		and = append(and, &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: or}}})
	}
	if len(r.GetMethods()) > 0 {
		var or []*rbacv3.Permission
		for _, m := range r.GetMethods() {
			or = append(or, &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{
				Name:                 ":method",
				HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m}}},
			}}})
		}
		and = append(and, &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: or}}})
	}
	if len(and) == 0 {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: and}}}
}

// principals translates caller patterns to authenticated principals,
// matched by Envoy against the peer certificate's URI SAN: "*" any
// authenticated peer, "ns/<ns>/*" a prefix, "ns/<ns>/svc/<svc>" and SPIFFE
// IDs exactly.
func (t *translator) principals(callers []string) []*rbacv3.Principal {
	td := t.trustDomain
	if td == "" {
		td = defaultTrustDomain
	}
	out := make([]*rbacv3.Principal, 0, len(callers))
	for _, c := range callers {
		auth := &rbacv3.Principal_Authenticated{}
		switch {
		case c == "*":
		case strings.HasPrefix(c, "ns/") && strings.HasSuffix(c, "/*"):
			auth.PrincipalName = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + td + "/" + strings.TrimSuffix(c, "*")}}
		case strings.HasPrefix(c, "ns/"):
			auth.PrincipalName = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://" + td + "/" + c}}
		default:
			auth.PrincipalName = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: c}}
		}
		out = append(out, &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: auth}})
	}
	return out
}
