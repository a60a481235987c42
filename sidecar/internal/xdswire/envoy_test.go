package xdswire_test

// expect* convert go-control-plane's generated Envoy messages into the
// structs the decoder should produce, through the generated getters: an
// implementation independent of the wire decoder under test.

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/shoal-mesh/shoal/sidecar/internal/xdswire"
)

func u32(w *wrapperspb.UInt32Value) *uint32 {
	if w == nil {
		return nil
	}
	v := w.GetValue()
	return &v
}

func u64(w *wrapperspb.UInt64Value) *uint64 {
	if w == nil {
		return nil
	}
	v := w.GetValue()
	return &v
}

func dur(d *durationpb.Duration) *xdswire.Duration {
	if d == nil {
		return nil
	}
	return &xdswire.Duration{Seconds: d.GetSeconds(), Nanos: d.GetNanos()}
}

func expectListener(l *listenerv3.Listener) *xdswire.Listener {
	out := &xdswire.Listener{Name: l.GetName(), Address: expectAddress(l.GetAddress())}
	for _, fc := range l.GetFilterChains() {
		out.FilterChains = append(out.FilterChains, expectFilterChain(fc))
	}
	if fc := l.GetDefaultFilterChain(); fc != nil {
		c := expectFilterChain(fc)
		out.DefaultFilterChain = &c
	}
	if a := l.GetApiListener(); a != nil {
		out.APIListener = &xdswire.APIListener{APIListener: expectTypedConfig(a.GetApiListener())}
	}
	return out
}

func expectFilterChain(fc *listenerv3.FilterChain) xdswire.FilterChain {
	out := xdswire.FilterChain{Name: fc.GetName()}
	for _, f := range fc.GetFilters() {
		out.Filters = append(out.Filters, xdswire.Filter{Name: f.GetName(), TypedConfig: expectTypedConfig(f.GetTypedConfig())})
	}
	return out
}

func expectTypedConfig(a *anypb.Any) *xdswire.TypedConfig {
	if a == nil {
		return nil
	}
	out := &xdswire.TypedConfig{TypeURL: a.GetTypeUrl()}
	if a.GetTypeUrl() == xdswire.HCMType {
		h := &hcmv3.HttpConnectionManager{}
		if err := a.UnmarshalTo(h); err != nil {
			panic(err)
		}
		out.HCM = expectHCM(h)
	}
	return out
}

func expectHCM(h *hcmv3.HttpConnectionManager) *xdswire.HttpConnectionManager {
	out := &xdswire.HttpConnectionManager{StatPrefix: h.GetStatPrefix()}
	switch s := h.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		out.Specifier = "rds"
		out.RDS = &xdswire.RDS{RouteConfigName: s.Rds.GetRouteConfigName(), ConfigSource: expectConfigSource(s.Rds.GetConfigSource())}
	case *hcmv3.HttpConnectionManager_RouteConfig:
		out.Specifier = "route_config"
		out.RouteConfig = expectRouteConfiguration(s.RouteConfig)
	case *hcmv3.HttpConnectionManager_ScopedRoutes:
		out.Specifier = "scoped_routes"
	}
	for _, f := range h.GetHttpFilters() {
		hf := xdswire.HTTPFilter{Name: f.GetName(), IsOptional: f.GetIsOptional(), Disabled: f.GetDisabled()}
		if tc := f.GetTypedConfig(); tc != nil {
			hf.TypedConfig = &xdswire.TypedConfig{TypeURL: tc.GetTypeUrl()}
		}
		out.HTTPFilters = append(out.HTTPFilters, hf)
	}
	return out
}

func expectConfigSource(c *corev3.ConfigSource) *xdswire.ConfigSource {
	if c == nil {
		return nil
	}
	out := &xdswire.ConfigSource{ResourceAPIVersion: xdswire.APIVersion(c.GetResourceApiVersion())}
	if c.GetAds() != nil {
		out.ADS = &xdswire.Empty{}
	}
	return out
}

func expectRouteConfiguration(rc *routev3.RouteConfiguration) *xdswire.RouteConfiguration {
	out := &xdswire.RouteConfiguration{Name: rc.GetName()}
	for _, vh := range rc.GetVirtualHosts() {
		v := xdswire.VirtualHost{Name: vh.GetName(), Domains: vh.GetDomains()}
		for _, r := range vh.GetRoutes() {
			v.Routes = append(v.Routes, expectRoute(r))
		}
		out.VirtualHosts = append(out.VirtualHosts, v)
	}
	return out
}

func expectRoute(r *routev3.Route) xdswire.Route {
	out := xdswire.Route{Name: r.GetName()}
	if m := r.GetMatch(); m != nil {
		out.Match = expectRouteMatch(m)
	}
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		out.Specifier = "route"
		out.Route = expectRouteAction(a.Route)
	case *routev3.Route_Redirect:
		out.Specifier = "redirect"
	case *routev3.Route_DirectResponse:
		out.Specifier = "direct_response"
	case *routev3.Route_FilterAction:
		out.Specifier = "filter_action"
	case *routev3.Route_NonForwardingAction:
		out.Specifier = "non_forwarding_action"
	}
	return out
}

func expectRegex(r *matcherv3.RegexMatcher) *xdswire.RegexMatcher {
	if r == nil {
		return nil
	}
	return &xdswire.RegexMatcher{Regex: r.GetRegex()}
}

func expectRouteMatch(m *routev3.RouteMatch) *xdswire.RouteMatch {
	out := &xdswire.RouteMatch{}
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.Specifier, out.Prefix = "prefix", p.Prefix
	case *routev3.RouteMatch_Path:
		out.Specifier, out.Path = "path", p.Path
	case *routev3.RouteMatch_SafeRegex:
		out.Specifier, out.SafeRegex = "safe_regex", expectRegex(p.SafeRegex)
		if out.SafeRegex == nil {
			out.SafeRegex = &xdswire.RegexMatcher{}
		}
	case *routev3.RouteMatch_ConnectMatcher_:
		out.Specifier = "connect_matcher"
	case *routev3.RouteMatch_PathSeparatedPrefix:
		out.Specifier, out.PathSeparatedPrefix = "path_separated_prefix", p.PathSeparatedPrefix
	case *routev3.RouteMatch_PathMatchPolicy:
		out.Specifier = "path_match_policy"
	}
	if cs := m.GetCaseSensitive(); cs != nil {
		v := cs.GetValue()
		out.CaseSensitive = &v
	}
	for _, h := range m.GetHeaders() {
		out.Headers = append(out.Headers, expectHeaderMatcher(h))
	}
	return out
}

func expectHeaderMatcher(h *routev3.HeaderMatcher) xdswire.HeaderMatcher {
	out := xdswire.HeaderMatcher{Name: h.GetName(), InvertMatch: h.GetInvertMatch(), TreatMissingHeaderAsEmpty: h.GetTreatMissingHeaderAsEmpty()}
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_ExactMatch:
		out.Specifier, out.ExactMatch = "exact_match", s.ExactMatch
	case *routev3.HeaderMatcher_SafeRegexMatch:
		out.Specifier, out.SafeRegexMatch = "safe_regex_match", &xdswire.RegexMatcher{Regex: s.SafeRegexMatch.GetRegex()}
	case *routev3.HeaderMatcher_RangeMatch:
		out.Specifier, out.RangeMatch = "range_match", &xdswire.Int64Range{Start: s.RangeMatch.GetStart(), End: s.RangeMatch.GetEnd()}
	case *routev3.HeaderMatcher_PresentMatch:
		out.Specifier, out.PresentMatch = "present_match", s.PresentMatch
	case *routev3.HeaderMatcher_PrefixMatch:
		out.Specifier, out.PrefixMatch = "prefix_match", s.PrefixMatch
	case *routev3.HeaderMatcher_SuffixMatch:
		out.Specifier, out.SuffixMatch = "suffix_match", s.SuffixMatch
	case *routev3.HeaderMatcher_ContainsMatch:
		out.Specifier, out.ContainsMatch = "contains_match", s.ContainsMatch
	case *routev3.HeaderMatcher_StringMatch:
		out.Specifier, out.StringMatch = "string_match", expectStringMatcher(s.StringMatch)
	}
	return out
}

func expectStringMatcher(s *matcherv3.StringMatcher) *xdswire.StringMatcher {
	out := &xdswire.StringMatcher{IgnoreCase: s.GetIgnoreCase()}
	switch p := s.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.Specifier, out.Exact = "exact", p.Exact
	case *matcherv3.StringMatcher_Prefix:
		out.Specifier, out.Prefix = "prefix", p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		out.Specifier, out.Suffix = "suffix", p.Suffix
	case *matcherv3.StringMatcher_SafeRegex:
		out.Specifier, out.SafeRegex = "safe_regex", &xdswire.RegexMatcher{Regex: p.SafeRegex.GetRegex()}
	case *matcherv3.StringMatcher_Contains:
		out.Specifier, out.Contains = "contains", p.Contains
	case *matcherv3.StringMatcher_Custom:
		out.Specifier = "custom"
	}
	return out
}

func expectRouteAction(a *routev3.RouteAction) *xdswire.RouteAction {
	out := &xdswire.RouteAction{Timeout: dur(a.GetTimeout())}
	switch c := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		out.Specifier, out.Cluster = "cluster", c.Cluster
	case *routev3.RouteAction_ClusterHeader:
		out.Specifier, out.ClusterHeader = "cluster_header", c.ClusterHeader
	case *routev3.RouteAction_WeightedClusters:
		out.Specifier = "weighted_clusters"
		wc := &xdswire.WeightedCluster{TotalWeight: u32(c.WeightedClusters.GetTotalWeight())}
		for _, cw := range c.WeightedClusters.GetClusters() {
			wc.Clusters = append(wc.Clusters, xdswire.ClusterWeight{Name: cw.GetName(), Weight: u32(cw.GetWeight())})
		}
		out.WeightedClusters = wc
	case *routev3.RouteAction_ClusterSpecifierPlugin:
		out.Specifier = "cluster_specifier_plugin"
	case *routev3.RouteAction_InlineClusterSpecifierPlugin:
		out.Specifier = "inline_cluster_specifier_plugin"
	}
	if rp := a.GetRetryPolicy(); rp != nil {
		p := &xdswire.RetryPolicy{
			RetryOn:                       rp.GetRetryOn(),
			NumRetries:                    u32(rp.GetNumRetries()),
			PerTryTimeout:                 dur(rp.GetPerTryTimeout()),
			HostSelectionRetryMaxAttempts: rp.GetHostSelectionRetryMaxAttempts(),
			RetriableStatusCodes:          rp.GetRetriableStatusCodes(),
		}
		for _, pr := range rp.GetRetryHostPredicate() {
			p.RetryHostPredicate = append(p.RetryHostPredicate, xdswire.RetryHostPredicate{Name: pr.GetName()})
		}
		out.RetryPolicy = p
	}
	for _, hp := range a.GetHashPolicy() {
		h := xdswire.HashPolicy{Terminal: hp.GetTerminal()}
		switch p := hp.GetPolicySpecifier().(type) {
		case *routev3.RouteAction_HashPolicy_Header_:
			h.Specifier, h.Header = "header", &xdswire.HashHeader{HeaderName: p.Header.GetHeaderName()}
		case *routev3.RouteAction_HashPolicy_Cookie_:
			h.Specifier, h.Cookie = "cookie", &xdswire.HashCookie{Name: p.Cookie.GetName(), TTL: dur(p.Cookie.GetTtl()), Path: p.Cookie.GetPath()}
		case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
			h.Specifier, h.ConnectionProperties = "connection_properties", &xdswire.HashConnectionProperties{SourceIP: p.ConnectionProperties.GetSourceIp()}
		case *routev3.RouteAction_HashPolicy_QueryParameter_:
			h.Specifier, h.QueryParameter = "query_parameter", &xdswire.HashQueryParameter{Name: p.QueryParameter.GetName()}
		case *routev3.RouteAction_HashPolicy_FilterState_:
			h.Specifier, h.FilterState = "filter_state", &xdswire.HashFilterState{Key: p.FilterState.GetKey()}
		}
		out.HashPolicy = append(out.HashPolicy, h)
	}
	return out
}

func expectCluster(c *clusterv3.Cluster) *xdswire.Cluster {
	out := &xdswire.Cluster{
		Name:           c.GetName(),
		Type:           xdswire.DiscoveryType(c.GetType()),
		ConnectTimeout: dur(c.GetConnectTimeout()),
		LBPolicy:       xdswire.LBPolicy(c.GetLbPolicy()),
	}
	if ct := c.GetClusterType(); ct != nil {
		out.ClusterType = &xdswire.CustomClusterType{Name: ct.GetName()}
	}
	if e := c.GetEdsClusterConfig(); e != nil {
		out.EDSClusterConfig = &xdswire.EDSClusterConfig{EDSConfig: expectConfigSource(e.GetEdsConfig()), ServiceName: e.GetServiceName()}
	}
	if cb := c.GetCircuitBreakers(); cb != nil {
		out.CircuitBreakers = &xdswire.CircuitBreakers{}
		for _, t := range cb.GetThresholds() {
			out.CircuitBreakers.Thresholds = append(out.CircuitBreakers.Thresholds, xdswire.Thresholds{
				Priority:           xdswire.RoutingPriority(t.GetPriority()),
				MaxConnections:     u32(t.GetMaxConnections()),
				MaxPendingRequests: u32(t.GetMaxPendingRequests()),
				MaxRequests:        u32(t.GetMaxRequests()),
				MaxRetries:         u32(t.GetMaxRetries()),
			})
		}
	}
	if od := c.GetOutlierDetection(); od != nil {
		out.OutlierDetection = &xdswire.OutlierDetection{
			Consecutive5xx:                     u32(od.GetConsecutive_5Xx()),
			Interval:                           dur(od.GetInterval()),
			BaseEjectionTime:                   dur(od.GetBaseEjectionTime()),
			MaxEjectionPercent:                 u32(od.GetMaxEjectionPercent()),
			EnforcingConsecutive5xx:            u32(od.GetEnforcingConsecutive_5Xx()),
			EnforcingSuccessRate:               u32(od.GetEnforcingSuccessRate()),
			ConsecutiveGatewayFailure:          u32(od.GetConsecutiveGatewayFailure()),
			EnforcingConsecutiveGatewayFailure: u32(od.GetEnforcingConsecutiveGatewayFailure()),
			EnforcingFailurePercentage:         u32(od.GetEnforcingFailurePercentage()),
			MaxEjectionTime:                    dur(od.GetMaxEjectionTime()),
		}
	}
	if cl := c.GetCommonLbConfig(); cl != nil {
		out.CommonLBConfig = &xdswire.CommonLBConfig{}
		if p := cl.GetHealthyPanicThreshold(); p != nil {
			out.CommonLBConfig.HealthyPanicThreshold = &xdswire.Percent{Value: p.GetValue()}
		}
	}
	if rh := c.GetRingHashLbConfig(); rh != nil {
		out.RingHashLBConfig = &xdswire.RingHashLBConfig{
			MinimumRingSize: u64(rh.GetMinimumRingSize()),
			HashFunction:    xdswire.HashFunction(rh.GetHashFunction()),
			MaximumRingSize: u64(rh.GetMaximumRingSize()),
		}
	}
	if m := c.GetMaglevLbConfig(); m != nil {
		out.MaglevLBConfig = &xdswire.MaglevLBConfig{TableSize: u64(m.GetTableSize())}
	}
	if lr := c.GetLeastRequestLbConfig(); lr != nil {
		out.LeastRequestLBConfig = &xdswire.LeastRequestLBConfig{ChoiceCount: u32(lr.GetChoiceCount())}
	}
	for k, a := range c.GetTypedExtensionProtocolOptions() {
		if out.TypedExtensionProtocolOptions == nil {
			out.TypedExtensionProtocolOptions = map[string]*xdswire.ProtocolOptions{}
		}
		o := &xdswire.ProtocolOptions{TypeURL: a.GetTypeUrl()}
		if a.GetTypeUrl() == xdswire.HTTPProtocolOptionsType {
			var h httpv3.HttpProtocolOptions
			if err := a.UnmarshalTo(&h); err != nil {
				panic(err)
			}
			switch p := h.GetUpstreamProtocolOptions().(type) {
			case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_:
				e := &xdswire.ExplicitHTTPConfig{}
				switch p.ExplicitHttpConfig.GetProtocolConfig().(type) {
				case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions:
					e.HTTPProtocolOptions = &xdswire.Empty{}
				case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions:
					e.HTTP2ProtocolOptions = &xdswire.Empty{}
				case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http3ProtocolOptions:
					e.HTTP3ProtocolOptions = &xdswire.Empty{}
				}
				o.ExplicitHTTPConfig = e
			case *httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig:
				o.UseDownstreamProtocolConfig = &xdswire.Empty{}
			case *httpv3.HttpProtocolOptions_AutoConfig:
				o.AutoConfig = &xdswire.Empty{}
			}
		}
		out.TypedExtensionProtocolOptions[k] = o
	}
	return out
}

func expectCLA(c *endpointv3.ClusterLoadAssignment) *xdswire.ClusterLoadAssignment {
	out := &xdswire.ClusterLoadAssignment{ClusterName: c.GetClusterName()}
	for _, l := range c.GetEndpoints() {
		le := xdswire.LocalityLBEndpoints{LoadBalancingWeight: u32(l.GetLoadBalancingWeight()), Priority: l.GetPriority()}
		if loc := l.GetLocality(); loc != nil {
			le.Locality = &xdswire.Locality{Region: loc.GetRegion(), Zone: loc.GetZone(), SubZone: loc.GetSubZone()}
		}
		for _, e := range l.GetLbEndpoints() {
			lbe := xdswire.LBEndpoint{
				EndpointName:        e.GetEndpointName(),
				HealthStatus:        xdswire.HealthStatus(e.GetHealthStatus()),
				LoadBalancingWeight: u32(e.GetLoadBalancingWeight()),
			}
			if ep := e.GetEndpoint(); ep != nil {
				lbe.Endpoint = &xdswire.Endpoint{Address: expectAddress(ep.GetAddress()), Hostname: ep.GetHostname()}
			}
			le.LBEndpoints = append(le.LBEndpoints, lbe)
		}
		out.Endpoints = append(out.Endpoints, le)
	}
	return out
}

func expectAddress(a *corev3.Address) *xdswire.Address {
	if a == nil {
		return nil
	}
	out := &xdswire.Address{}
	switch x := a.GetAddress().(type) {
	case *corev3.Address_SocketAddress:
		s := x.SocketAddress
		out.Specifier = "socket_address"
		out.SocketAddress = &xdswire.SocketAddress{
			Protocol: xdswire.SocketProtocol(s.GetProtocol()), Address: s.GetAddress(),
			PortValue: s.GetPortValue(), NamedPort: s.GetNamedPort(),
		}
	case *corev3.Address_Pipe:
		out.Specifier, out.Pipe = "pipe", &xdswire.Pipe{Path: x.Pipe.GetPath()}
	case *corev3.Address_EnvoyInternalAddress:
		out.Specifier = "envoy_internal_address"
	}
	return out
}
