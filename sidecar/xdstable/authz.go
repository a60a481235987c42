package xdstable

import (
	"fmt"
	"sort"

	rbacv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/rbac/v3"
	routev3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/route/v3"
	matcherv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/type/matcher/v3"

	"github.com/shoal-mesh/shoal/sidecar/authz"
	"github.com/shoal-mesh/shoal/sidecar/internal/xdsres"
	"github.com/shoal-mesh/shoal/sidecar/xdsclient"
)

// authzPolicy compiles the authorization of service from the RBAC
// per-route configuration on the virtual host of its RouteConfiguration
// (named after the service). It returns nil (allow all) when there is
// none. A configuration it cannot express fails closed: the policy it
// returns with the error denies every request.
func authzPolicy(snap *xdsclient.Snapshot, service string) (*authz.Policy, error) {
	rc, err := snap.RouteConfiguration(service)
	if err != nil || rc == nil {
		return nil, nil //nolint:nilerr // no route configuration (yet): no policy
	}
	var rbac *rbacv3.RBAC
	for _, vh := range rc.GetVirtualHosts() {
		pr, err := xdsres.RBACPerRoute(vh)
		if err != nil {
			return &authz.Policy{Service: service}, fmt.Errorf("route configuration %q: %w", service, err)
		}
		if r := pr.GetRbac().GetRules(); r != nil {
			rbac = r
		}
	}
	if rbac == nil {
		return nil, nil
	}
	p, err := compileRBAC(service, rbac)
	if err != nil {
		return &authz.Policy{Service: service}, fmt.Errorf("route configuration %q: rbac: %w; denying every request", service, err)
	}
	return p, nil
}

func compileRBAC(service string, r *rbacv3.RBAC) (*authz.Policy, error) {
	if r.GetAction() != rbacv3.RBAC_ALLOW {
		return nil, fmt.Errorf("action %s is not supported (only ALLOW)", r.GetAction())
	}
	names := make([]string, 0, len(r.GetPolicies()))
	for n := range r.GetPolicies() {
		names = append(names, n)
	}
	sort.Strings(names)
	p := &authz.Policy{Service: service}
	for _, n := range names {
		pol := r.GetPolicies()[n]
		rule := authz.Rule{Name: n}
		for _, pm := range pol.GetPermissions() {
			m, err := permission(pm)
			if err != nil {
				return nil, fmt.Errorf("policy %q: %w", n, err)
			}
			rule.Permissions = append(rule.Permissions, m)
		}
		for _, pr := range pol.GetPrincipals() {
			m, err := principal(pr)
			if err != nil {
				return nil, fmt.Errorf("policy %q: %w", n, err)
			}
			rule.Principals = append(rule.Principals, m)
		}
		p.Rules = append(p.Rules, rule)
	}
	return p, nil
}

func permission(p *rbacv3.Permission) (authz.Matcher, error) {
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		if r.Any {
			return authz.Any, nil
		}
	case *rbacv3.Permission_AndRules:
		ms, err := permissions(r.AndRules.GetRules())
		return authz.All(ms...), err
	case *rbacv3.Permission_OrRules:
		ms, err := permissions(r.OrRules.GetRules())
		return authz.OneOf(ms...), err
	case *rbacv3.Permission_NotRule:
		m, err := permission(r.NotRule)
		if err != nil {
			return nil, err
		}
		return authz.Not(m), nil
	case *rbacv3.Permission_UrlPath:
		s, err := stringMatcher(r.UrlPath.GetPath())
		if err != nil {
			return nil, fmt.Errorf("url_path: %w", err)
		}
		return authz.Path(s), nil
	case *rbacv3.Permission_Header:
		return methodMatcher(r.Header)
	}
	return nil, fmt.Errorf("permission %T is not supported", p.GetRule())
}

func permissions(ps []*rbacv3.Permission) ([]authz.Matcher, error) {
	out := make([]authz.Matcher, 0, len(ps))
	for _, p := range ps {
		m, err := permission(p)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// methodMatcher supports the one header a permission of ours names.
func methodMatcher(h *routev3.HeaderMatcher) (authz.Matcher, error) {
	if h.GetName() != ":method" || h.GetInvertMatch() {
		return nil, fmt.Errorf("header permission on %q is not supported (only :method)", h.GetName())
	}
	if e := h.GetExactMatch(); e != "" {
		return authz.Method(authz.String{Kind: "exact", Exact: e}), nil
	}
	s, err := stringMatcher(h.GetStringMatch())
	if err != nil {
		return nil, fmt.Errorf("header :method: %w", err)
	}
	return authz.Method(s), nil
}

func principal(p *rbacv3.Principal) (authz.Matcher, error) {
	switch r := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		if r.Any {
			return authz.Any, nil
		}
	case *rbacv3.Principal_Authenticated_:
		if r.Authenticated.GetPrincipalName() == nil {
			return authz.Authenticated(nil), nil
		}
		s, err := stringMatcher(r.Authenticated.GetPrincipalName())
		if err != nil {
			return nil, fmt.Errorf("principal_name: %w", err)
		}
		return authz.Authenticated(&s), nil
	}
	return nil, fmt.Errorf("principal %T is not supported", p.GetIdentifier())
}

func stringMatcher(m *matcherv3.StringMatcher) (authz.String, error) {
	s := authz.String{IgnoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		s.Kind, s.Exact = "exact", p.Exact
	case *matcherv3.StringMatcher_Prefix:
		s.Kind, s.Prefix = "prefix", p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		s.Kind, s.Suffix = "suffix", p.Suffix
	case *matcherv3.StringMatcher_Contains:
		s.Kind, s.Contains = "contains", p.Contains
	default:
		return s, fmt.Errorf("string matcher %T is not supported", m.GetMatchPattern())
	}
	return s, nil
}
