package xdsres

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	clusterv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/cluster/v3"
	corev3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/core/v3"
	endpointv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/endpoint/v3"
	listenerv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/listener/v3"
	routev3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/route/v3"
	hcmv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/type/matcher/v3"
	typev3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/type/v3"
)

// Validate checks r against the constraints the Envoy protos declare for
// the fields the sidecar reads (protoc-gen-validate rules: required oneofs
// and messages, minimum lengths, defined enum values, ranges), and that
// the nested configurations it reads (HTTP connection managers, upstream
// HTTP protocol options) decode. It returns every violation, joined with
// "; ", each as "invalid Message.Field: reason".
func Validate(r proto.Message) error {
	var v validator
	switch r := r.(type) {
	case *listenerv3.Listener:
		v.listener(r)
	case *routev3.RouteConfiguration:
		v.routeConfig(r)
	case *clusterv3.Cluster:
		v.cluster(r)
	case *endpointv3.ClusterLoadAssignment:
		v.cla(r)
	default:
		return fmt.Errorf("%w %T", ErrUnsupportedType, r)
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

// defined checks that e is a value its enum declares.
func (v *validator) defined(path string, e protoreflect.Enum) {
	if e.Descriptor().Values().ByNumber(e.Number()) == nil {
		v.fail(path, "value must be one of the defined enum values")
	}
}

func (v *validator) lte32(path string, p *wrapperspb.UInt32Value, max uint32) {
	if p != nil && p.GetValue() > max {
		v.fail(path, fmt.Sprintf("value must be less than or equal to %d", max))
	}
}

func (v *validator) gte32(path string, p *wrapperspb.UInt32Value, min uint32) {
	if p != nil && p.GetValue() < min {
		v.fail(path, fmt.Sprintf("value must be greater than or equal to %d", min))
	}
}

func (v *validator) lte64(path string, p *wrapperspb.UInt64Value, max uint64) {
	if p != nil && p.GetValue() > max {
		v.fail(path, fmt.Sprintf("value must be less than or equal to %d", max))
	}
}

// duration checks that d, if set, is a valid Duration and, with positive,
// greater than zero.
func (v *validator) duration(path string, d *durationpb.Duration, positive bool) {
	switch {
	case d == nil:
	case d.CheckValid() != nil:
		v.fail(path, "value is not a valid duration")
	case positive && d.AsDuration() <= 0:
		v.fail(path, "value must be greater than 0s")
	}
}

func (v *validator) listener(l *listenerv3.Listener) {
	if l.GetAddress() != nil {
		v.address("Listener.Address", l.GetAddress())
	}
	chains := l.GetFilterChains()
	if d := l.GetDefaultFilterChain(); d != nil {
		chains = append([]*listenerv3.FilterChain{d}, chains...)
	}
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			v.minLen("Filter.Name", f.GetName())
			if a := f.GetTypedConfig(); a.GetTypeUrl() == HCMType {
				v.hcmAny(a.GetValue())
			}
		}
	}
	if a := l.GetApiListener().GetApiListener(); a != nil {
		// The API listener is an HTTP connection manager (gRFC A27).
		if a.GetTypeUrl() != HCMType {
			v.fail("Listener.ApiListener", fmt.Sprintf("type %q is not an HTTP connection manager", a.GetTypeUrl()))
		} else {
			v.hcmAny(a.GetValue())
		}
	}
}

func (v *validator) hcmAny(b []byte) {
	h := &hcmv3.HttpConnectionManager{}
	if err := unmarshal.Unmarshal(b, h); err != nil {
		v.fail("HttpConnectionManager", err.Error())
		return
	}
	v.minLen("HttpConnectionManager.StatPrefix", h.GetStatPrefix())
	v.required("HttpConnectionManager.RouteSpecifier", h.GetRouteSpecifier() != nil)
	if rds := h.GetRds(); rds != nil {
		v.required("Rds.ConfigSource", rds.GetConfigSource() != nil)
	}
	if rc := h.GetRouteConfig(); rc != nil {
		v.routeConfig(rc)
	}
	for _, f := range h.GetHttpFilters() {
		v.minLen("HttpFilter.Name", f.GetName())
	}
}

func (v *validator) routeConfig(rc *routev3.RouteConfiguration) {
	for _, vh := range rc.GetVirtualHosts() {
		v.minLen("VirtualHost.Name", vh.GetName())
		if len(vh.GetDomains()) == 0 {
			v.fail("VirtualHost.Domains", "value must contain at least 1 item(s)")
		}
		for _, r := range vh.GetRoutes() {
			v.route(r)
		}
		v.rbac(vh)
	}
}

// rbac checks the RBAC per-route configuration's rules that Envoy's protos
// declare for what the sidecar reads.
func (v *validator) rbac(vh *routev3.VirtualHost) {
	pr, err := RBACPerRoute(vh)
	if err != nil {
		v.fail("VirtualHost.TypedPerFilterConfig", err.Error())
		return
	}
	if r := pr.GetRbac().GetRules(); r != nil {
		v.defined("RBAC.Action", r.GetAction())
		for _, p := range r.GetPolicies() {
			if len(p.GetPermissions()) == 0 {
				v.fail("Policy.Permissions", "value must contain at least 1 item(s)")
			}
			if len(p.GetPrincipals()) == 0 {
				v.fail("Policy.Principals", "value must contain at least 1 item(s)")
			}
		}
	}
}

func (v *validator) route(r *routev3.Route) {
	v.required("Route.Match", r.GetMatch() != nil)
	v.required("Route.Action", r.GetAction() != nil)
	if m := r.GetMatch(); m != nil {
		v.required("RouteMatch.PathSpecifier", m.GetPathSpecifier() != nil)
		if re := m.GetSafeRegex(); re != nil {
			v.minLen("RegexMatcher.Regex", re.GetRegex())
		}
		for _, h := range m.GetHeaders() {
			v.headerMatcher(h)
		}
	}
	if a := r.GetRoute(); a != nil {
		v.routeAction(a)
	}
}

func (v *validator) headerMatcher(h *routev3.HeaderMatcher) {
	v.minLen("HeaderMatcher.Name", h.GetName())
	if re := h.GetSafeRegexMatch(); re != nil {
		v.minLen("RegexMatcher.Regex", re.GetRegex())
	}
	if s := h.GetStringMatch(); s != nil {
		v.required("StringMatcher.MatchPattern", s.GetMatchPattern() != nil)
		switch p := s.GetMatchPattern().(type) {
		case *matcherv3.StringMatcher_Prefix:
			v.minLen("StringMatcher.Prefix", p.Prefix)
		case *matcherv3.StringMatcher_Suffix:
			v.minLen("StringMatcher.Suffix", p.Suffix)
		case *matcherv3.StringMatcher_Contains:
			v.minLen("StringMatcher.Contains", p.Contains)
		case *matcherv3.StringMatcher_SafeRegex:
			v.minLen("RegexMatcher.Regex", p.SafeRegex.GetRegex())
		}
	}
}

func (v *validator) routeAction(a *routev3.RouteAction) {
	v.required("RouteAction.ClusterSpecifier", a.GetClusterSpecifier() != nil)
	switch s := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		v.minLen("RouteAction.Cluster", s.Cluster)
	case *routev3.RouteAction_ClusterHeader:
		v.minLen("RouteAction.ClusterHeader", s.ClusterHeader)
	case *routev3.RouteAction_WeightedClusters:
		if len(s.WeightedClusters.GetClusters()) == 0 {
			v.fail("WeightedCluster.Clusters", "value must contain at least 1 item(s)")
		}
	}
	v.duration("RouteAction.Timeout", a.GetTimeout(), false)
	if p := a.GetRetryPolicy(); p != nil {
		v.duration("RetryPolicy.PerTryTimeout", p.GetPerTryTimeout(), false)
	}
	for _, hp := range a.GetHashPolicy() {
		v.required("HashPolicy.PolicySpecifier", hp.GetPolicySpecifier() != nil)
		switch s := hp.GetPolicySpecifier().(type) {
		case *routev3.RouteAction_HashPolicy_Header_:
			v.minLen("HashPolicy_Header.HeaderName", s.Header.GetHeaderName())
		case *routev3.RouteAction_HashPolicy_Cookie_:
			v.minLen("HashPolicy_Cookie.Name", s.Cookie.GetName())
			v.duration("HashPolicy_Cookie.Ttl", s.Cookie.GetTtl(), false)
		case *routev3.RouteAction_HashPolicy_QueryParameter_:
			v.minLen("HashPolicy_QueryParameter.Name", s.QueryParameter.GetName())
		case *routev3.RouteAction_HashPolicy_FilterState_:
			v.minLen("HashPolicy_FilterState.Key", s.FilterState.GetKey())
		}
	}
}

func (v *validator) cluster(c *clusterv3.Cluster) {
	v.defined("Cluster.Type", c.GetType())
	v.duration("Cluster.ConnectTimeout", c.GetConnectTimeout(), true)
	v.defined("Cluster.LbPolicy", c.GetLbPolicy())
	for _, t := range c.GetCircuitBreakers().GetThresholds() {
		v.defined("CircuitBreakers_Thresholds.Priority", t.GetPriority())
	}
	if o := c.GetOutlierDetection(); o != nil {
		v.duration("OutlierDetection.Interval", o.GetInterval(), true)
		v.duration("OutlierDetection.BaseEjectionTime", o.GetBaseEjectionTime(), true)
		v.duration("OutlierDetection.MaxEjectionTime", o.GetMaxEjectionTime(), true)
		v.lte32("OutlierDetection.MaxEjectionPercent", o.GetMaxEjectionPercent(), 100)
		v.lte32("OutlierDetection.EnforcingConsecutive_5Xx", o.GetEnforcingConsecutive_5Xx(), 100)
		v.lte32("OutlierDetection.EnforcingSuccessRate", o.GetEnforcingSuccessRate(), 100)
		v.lte32("OutlierDetection.EnforcingConsecutiveGatewayFailure", o.GetEnforcingConsecutiveGatewayFailure(), 100)
		v.lte32("OutlierDetection.EnforcingFailurePercentage", o.GetEnforcingFailurePercentage(), 100)
	}
	v.percent("Percent.Value", c.GetCommonLbConfig().GetHealthyPanicThreshold())
	if rh := c.GetRingHashLbConfig(); rh != nil {
		v.lte64("Cluster_RingHashLbConfig.MinimumRingSize", rh.GetMinimumRingSize(), 8388608)
		v.lte64("Cluster_RingHashLbConfig.MaximumRingSize", rh.GetMaximumRingSize(), 8388608)
		v.defined("Cluster_RingHashLbConfig.HashFunction", rh.GetHashFunction())
	}
	if m := c.GetMaglevLbConfig(); m != nil {
		v.lte64("Cluster_MaglevLbConfig.TableSize", m.GetTableSize(), 5000011)
	}
	if lr := c.GetLeastRequestLbConfig(); lr != nil {
		v.gte32("Cluster_LeastRequestLbConfig.ChoiceCount", lr.GetChoiceCount(), 2)
		v.percent("Cluster_SlowStartConfig.MinWeightPercent", lr.GetSlowStartConfig().GetMinWeightPercent())
	}
	v.percent("Cluster_SlowStartConfig.MinWeightPercent", c.GetRoundRobinLbConfig().GetSlowStartConfig().GetMinWeightPercent())
	if _, err := HTTPProtocolOptions(c); err != nil {
		v.fail("Cluster.TypedExtensionProtocolOptions", err.Error())
	}
	v.lbPolicy(c)
}

// percent checks an optional envoy.type.v3.Percent: [0, 100].
func (v *validator) percent(path string, p *typev3.Percent) {
	if p == nil {
		return
	}
	if pv := p.GetValue(); !(pv >= 0 && pv <= 100) {
		v.fail(path, "value must be inside range [0, 100]")
	}
}

func (v *validator) cla(c *endpointv3.ClusterLoadAssignment) {
	v.minLen("ClusterLoadAssignment.ClusterName", c.GetClusterName())
	for _, l := range c.GetEndpoints() {
		v.gte32("LocalityLbEndpoints.LoadBalancingWeight", l.GetLoadBalancingWeight(), 1)
		if l.GetPriority() > 128 {
			v.fail("LocalityLbEndpoints.Priority", "value must be less than or equal to 128")
		}
		for _, e := range l.GetLbEndpoints() {
			v.defined("LbEndpoint.HealthStatus", e.GetHealthStatus())
			v.gte32("LbEndpoint.LoadBalancingWeight", e.GetLoadBalancingWeight(), 1)
			if a := e.GetEndpoint().GetAddress(); a != nil {
				v.address("Endpoint.Address", a)
			}
		}
	}
}

func (v *validator) address(path string, a *corev3.Address) {
	v.required(path+".Address", a.GetAddress() != nil)
	if s := a.GetSocketAddress(); s != nil {
		v.defined("SocketAddress.Protocol", s.GetProtocol())
		v.minLen("SocketAddress.Address", s.GetAddress())
		if s.GetPortValue() > 65535 {
			v.fail("SocketAddress.PortValue", "value must be less than or equal to 65535")
		}
	}
	if p := a.GetPipe(); p != nil {
		v.minLen("Pipe.Path", p.GetPath())
	}
}

// lbPolicy checks Cluster.load_balancing_policy: every policy is a named
// typed extension, and the client_side_weighted_round_robin config holds
// Envoy's rules.
func (v *validator) lbPolicy(c *clusterv3.Cluster) {
	for _, p := range c.GetLoadBalancingPolicy().GetPolicies() {
		tc := p.GetTypedExtensionConfig()
		v.required("LoadBalancingPolicy_Policy.TypedExtensionConfig", tc != nil)
		if tc == nil {
			continue
		}
		v.minLen("TypedExtensionConfig.Name", tc.GetName())
		v.required("TypedExtensionConfig.TypedConfig", tc.GetTypedConfig() != nil)
	}
	w, err := LoadBalancingPolicy(c)
	switch {
	case err != nil:
		v.fail("Cluster.LoadBalancingPolicy", err.Error())
	case w != nil:
		v.duration("ClientSideWeightedRoundRobin.BlackoutPeriod", w.GetBlackoutPeriod(), false)
		v.duration("ClientSideWeightedRoundRobin.WeightExpirationPeriod", w.GetWeightExpirationPeriod(), false)
		v.duration("ClientSideWeightedRoundRobin.WeightUpdatePeriod", w.GetWeightUpdatePeriod(), false)
		if p := w.GetErrorUtilizationPenalty(); p != nil && !(p.GetValue() >= 0) {
			v.fail("ClientSideWeightedRoundRobin.ErrorUtilizationPenalty", "value must be greater than or equal to 0")
		}
		v.percent("SlowStartConfig.MinWeightPercent", w.GetSlowStartConfig().GetMinWeightPercent())
	}
}
