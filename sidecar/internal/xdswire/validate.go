package xdswire

import (
	"errors"
	"fmt"
	"strings"
)

// Validate checks the decoded fields of r against the constraints the
// Envoy protos declare for them (protoc-gen-validate rules: required
// oneofs and messages, minimum lengths, defined enum values, ranges). It
// returns every violation, joined with "; ", each as
// "invalid Message.Field: reason".
func Validate(r Resource) error {
	var v validator
	switch r := r.(type) {
	case *Listener:
		v.listener(r)
	case *RouteConfiguration:
		v.routeConfig(r)
	case *Cluster:
		v.cluster(r)
	case *ClusterLoadAssignment:
		v.cla(r)
	default:
		return fmt.Errorf("%w %T", errUnsupportedType, r)
	}
	if len(v.errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(v.errs, "; "))
}

type validator struct{ errs []string }

func (v *validator) fail(path, reason string) {
	v.errs = append(v.errs, "invalid "+path+": "+reason)
}

func (v *validator) minLen(path, s string) {
	if s == "" {
		v.fail(path, "value length must be at least 1 runes")
	}
}

func (v *validator) required(path string, present bool) {
	if !present {
		v.fail(path, "value is required")
	}
}

func (v *validator) defined(path string, ok bool) {
	if !ok {
		v.fail(path, "value must be one of the defined enum values")
	}
}

func (v *validator) lte32(path string, p *uint32, max uint32) {
	if p != nil && *p > max {
		v.fail(path, fmt.Sprintf("value must be less than or equal to %d", max))
	}
}

func (v *validator) gte32(path string, p *uint32, min uint32) {
	if p != nil && *p < min {
		v.fail(path, fmt.Sprintf("value must be greater than or equal to %d", min))
	}
}

func (v *validator) lte64(path string, p *uint64, max uint64) {
	if p != nil && *p > max {
		v.fail(path, fmt.Sprintf("value must be less than or equal to %d", max))
	}
}

// duration checks that d, if set, is a valid Duration and, with positive,
// greater than zero.
func (v *validator) duration(path string, d *Duration, positive bool) {
	switch {
	case d == nil:
	case !d.valid():
		v.fail(path, "value is not a valid duration")
	case positive && d.Std() <= 0:
		v.fail(path, "value must be greater than 0s")
	}
}

func (v *validator) listener(l *Listener) {
	if l.Address != nil {
		v.address("Listener.Address", l.Address)
	}
	chains := l.FilterChains
	if l.DefaultFilterChain != nil {
		chains = append([]FilterChain{*l.DefaultFilterChain}, chains...)
	}
	for _, fc := range chains {
		for _, f := range fc.Filters {
			v.minLen("Filter.Name", f.Name)
			if f.TypedConfig != nil && f.TypedConfig.HCM != nil {
				v.hcm(f.TypedConfig.HCM)
			}
		}
	}
	if a := l.APIListener; a != nil && a.APIListener != nil {
		// The API listener is an HTTP connection manager (gRFC A27).
		if a.APIListener.HCM == nil {
			v.fail("Listener.ApiListener", fmt.Sprintf("type %q is not an HTTP connection manager", a.APIListener.TypeURL))
		} else {
			v.hcm(a.APIListener.HCM)
		}
	}
}

func (v *validator) hcm(h *HttpConnectionManager) {
	v.minLen("HttpConnectionManager.StatPrefix", h.StatPrefix)
	v.required("HttpConnectionManager.RouteSpecifier", h.Specifier != "")
	if h.RDS != nil {
		v.required("Rds.ConfigSource", h.RDS.ConfigSource != nil)
	}
	if h.RouteConfig != nil {
		v.routeConfig(h.RouteConfig)
	}
	for _, f := range h.HTTPFilters {
		v.minLen("HttpFilter.Name", f.Name)
	}
}

func (v *validator) routeConfig(rc *RouteConfiguration) {
	for _, vh := range rc.VirtualHosts {
		v.minLen("VirtualHost.Name", vh.Name)
		if len(vh.Domains) == 0 {
			v.fail("VirtualHost.Domains", "value must contain at least 1 item(s)")
		}
		for i := range vh.Routes {
			v.route(&vh.Routes[i])
		}
	}
}

func (v *validator) route(r *Route) {
	v.required("Route.Match", r.Match != nil)
	v.required("Route.Action", r.Specifier != "")
	if m := r.Match; m != nil {
		v.required("RouteMatch.PathSpecifier", m.Specifier != "")
		if m.SafeRegex != nil {
			v.minLen("RegexMatcher.Regex", m.SafeRegex.Regex)
		}
		for i := range m.Headers {
			v.headerMatcher(&m.Headers[i])
		}
	}
	if a := r.Route; a != nil {
		v.routeAction(a)
	}
}

func (v *validator) headerMatcher(h *HeaderMatcher) {
	v.minLen("HeaderMatcher.Name", h.Name)
	if h.SafeRegexMatch != nil {
		v.minLen("RegexMatcher.Regex", h.SafeRegexMatch.Regex)
	}
	if s := h.StringMatch; s != nil {
		v.required("StringMatcher.MatchPattern", s.Specifier != "")
		switch s.Specifier {
		case "prefix":
			v.minLen("StringMatcher.Prefix", s.Prefix)
		case "suffix":
			v.minLen("StringMatcher.Suffix", s.Suffix)
		case "contains":
			v.minLen("StringMatcher.Contains", s.Contains)
		case "safe_regex":
			v.minLen("RegexMatcher.Regex", s.SafeRegex.Regex)
		}
	}
}

func (v *validator) routeAction(a *RouteAction) {
	v.required("RouteAction.ClusterSpecifier", a.Specifier != "")
	switch a.Specifier {
	case "cluster":
		v.minLen("RouteAction.Cluster", a.Cluster)
	case "cluster_header":
		v.minLen("RouteAction.ClusterHeader", a.ClusterHeader)
	case "weighted_clusters":
		if len(a.WeightedClusters.Clusters) == 0 {
			v.fail("WeightedCluster.Clusters", "value must contain at least 1 item(s)")
		}
	}
	v.duration("RouteAction.Timeout", a.Timeout, false)
	if p := a.RetryPolicy; p != nil {
		v.duration("RetryPolicy.PerTryTimeout", p.PerTryTimeout, false)
	}
	for _, hp := range a.HashPolicy {
		v.required("HashPolicy.PolicySpecifier", hp.Specifier != "")
		switch hp.Specifier {
		case "header":
			v.minLen("HashPolicy_Header.HeaderName", hp.Header.HeaderName)
		case "cookie":
			v.minLen("HashPolicy_Cookie.Name", hp.Cookie.Name)
			v.duration("HashPolicy_Cookie.Ttl", hp.Cookie.TTL, false)
		case "query_parameter":
			v.minLen("HashPolicy_QueryParameter.Name", hp.QueryParameter.Name)
		case "filter_state":
			v.minLen("HashPolicy_FilterState.Key", hp.FilterState.Key)
		}
	}
}

func (v *validator) cluster(c *Cluster) {
	v.defined("Cluster.Type", c.Type.defined())
	v.duration("Cluster.ConnectTimeout", c.ConnectTimeout, true)
	v.defined("Cluster.LbPolicy", c.LBPolicy.defined())
	if cb := c.CircuitBreakers; cb != nil {
		for _, t := range cb.Thresholds {
			v.defined("CircuitBreakers_Thresholds.Priority", t.Priority.defined())
		}
	}
	if o := c.OutlierDetection; o != nil {
		v.duration("OutlierDetection.Interval", o.Interval, true)
		v.duration("OutlierDetection.BaseEjectionTime", o.BaseEjectionTime, true)
		v.duration("OutlierDetection.MaxEjectionTime", o.MaxEjectionTime, true)
		v.lte32("OutlierDetection.MaxEjectionPercent", o.MaxEjectionPercent, 100)
		v.lte32("OutlierDetection.EnforcingConsecutive_5Xx", o.EnforcingConsecutive5xx, 100)
		v.lte32("OutlierDetection.EnforcingSuccessRate", o.EnforcingSuccessRate, 100)
		v.lte32("OutlierDetection.EnforcingConsecutiveGatewayFailure", o.EnforcingConsecutiveGatewayFailure, 100)
		v.lte32("OutlierDetection.EnforcingFailurePercentage", o.EnforcingFailurePercentage, 100)
	}
	if p := c.CommonLBConfig; p != nil && p.HealthyPanicThreshold != nil {
		if pv := p.HealthyPanicThreshold.Value; !(pv >= 0 && pv <= 100) {
			v.fail("Percent.Value", "value must be inside range [0, 100]")
		}
	}
	if rh := c.RingHashLBConfig; rh != nil {
		v.lte64("Cluster_RingHashLbConfig.MinimumRingSize", rh.MinimumRingSize, 8388608)
		v.lte64("Cluster_RingHashLbConfig.MaximumRingSize", rh.MaximumRingSize, 8388608)
		v.defined("Cluster_RingHashLbConfig.HashFunction", rh.HashFunction.defined())
	}
	if m := c.MaglevLBConfig; m != nil {
		v.lte64("Cluster_MaglevLbConfig.TableSize", m.TableSize, 5000011)
	}
	if lr := c.LeastRequestLBConfig; lr != nil {
		v.gte32("Cluster_LeastRequestLbConfig.ChoiceCount", lr.ChoiceCount, 2)
	}
}

func (v *validator) cla(c *ClusterLoadAssignment) {
	v.minLen("ClusterLoadAssignment.ClusterName", c.ClusterName)
	for _, l := range c.Endpoints {
		v.gte32("LocalityLbEndpoints.LoadBalancingWeight", l.LoadBalancingWeight, 1)
		if l.Priority > 128 {
			v.fail("LocalityLbEndpoints.Priority", "value must be less than or equal to 128")
		}
		for _, e := range l.LBEndpoints {
			v.defined("LbEndpoint.HealthStatus", e.HealthStatus.defined())
			v.gte32("LbEndpoint.LoadBalancingWeight", e.LoadBalancingWeight, 1)
			if e.Endpoint != nil && e.Endpoint.Address != nil {
				v.address("Endpoint.Address", e.Endpoint.Address)
			}
		}
	}
}

func (v *validator) address(path string, a *Address) {
	v.required(path+".Address", a.Specifier != "")
	if s := a.SocketAddress; s != nil {
		v.defined("SocketAddress.Protocol", s.Protocol.defined())
		v.minLen("SocketAddress.Address", s.Address)
		if s.PortValue > 65535 {
			v.fail("SocketAddress.PortValue", "value must be less than or equal to 65535")
		}
	}
	if p := a.Pipe; p != nil {
		v.minLen("Pipe.Path", p.Path)
	}
}
