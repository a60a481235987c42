package xdswire

// The decoded subset of Envoy's v3 resources. Field names follow the
// protos; JSON tags are the proto field names (as Envoy's own /config_dump
// prints them). A oneof is a set of fields of which the decoder keeps the
// last one received; Specifier fields name that member.

// Resource is one of *Listener, *RouteConfiguration, *Cluster and
// *ClusterLoadAssignment.
type Resource interface {
	// ResourceName is the xDS name of the resource (cluster_name for a
	// ClusterLoadAssignment).
	ResourceName() string
}

// Empty stands for a message whose presence is all the sidecar reads.
type Empty struct{}

// Listener is envoy.config.listener.v3.Listener.
type Listener struct {
	Name               string        `json:"name"`
	Address            *Address      `json:"address,omitempty"`
	FilterChains       []FilterChain `json:"filter_chains,omitempty"`
	DefaultFilterChain *FilterChain  `json:"default_filter_chain,omitempty"`
	APIListener        *APIListener  `json:"api_listener,omitempty"`
}

// ResourceName returns l.Name.
func (l *Listener) ResourceName() string { return l.Name }

// HCMs returns the HTTP connection managers of l: those of its filter
// chains, its default filter chain and its API listener.
func (l *Listener) HCMs() []*HttpConnectionManager {
	var out []*HttpConnectionManager
	add := func(fc *FilterChain) {
		for i := range fc.Filters {
			if h := fc.Filters[i].TypedConfig.hcm(); h != nil {
				out = append(out, h)
			}
		}
	}
	if l.DefaultFilterChain != nil {
		add(l.DefaultFilterChain)
	}
	for i := range l.FilterChains {
		add(&l.FilterChains[i])
	}
	if l.APIListener != nil {
		if h := l.APIListener.APIListener.hcm(); h != nil {
			out = append(out, h)
		}
	}
	return out
}

// FilterChain is envoy.config.listener.v3.FilterChain.
type FilterChain struct {
	Name    string   `json:"name,omitempty"`
	Filters []Filter `json:"filters,omitempty"`
}

// Filter is a network filter.
type Filter struct {
	Name        string       `json:"name"`
	TypedConfig *TypedConfig `json:"typed_config,omitempty"`
}

// TypedConfig is a google.protobuf.Any holding an extension's config:
// its type URL, and the decoded config for the types the sidecar reads.
type TypedConfig struct {
	TypeURL string
	// HCM is set when TypeURL is HCMType.
	HCM *HttpConnectionManager
}

func (t *TypedConfig) hcm() *HttpConnectionManager {
	if t == nil {
		return nil
	}
	return t.HCM
}

// APIListener is envoy.config.listener.v3.ApiListener.
type APIListener struct {
	APIListener *TypedConfig `json:"api_listener,omitempty"`
}

// HttpConnectionManager is the HTTP connection manager's config.
//
//nolint:revive // Envoy's name
type HttpConnectionManager struct {
	StatPrefix string `json:"stat_prefix,omitempty"`
	// Route specifier oneof: RDS, RouteConfig, or scoped routes (only
	// recorded as Specifier "scoped_routes").
	Specifier   string              `json:"-"`
	RDS         *RDS                `json:"rds,omitempty"`
	RouteConfig *RouteConfiguration `json:"route_config,omitempty"`
	HTTPFilters []HTTPFilter        `json:"http_filters,omitempty"`
}

// RDS is the HCM's rds: where its route configuration comes from.
type RDS struct {
	ConfigSource    *ConfigSource `json:"config_source,omitempty"`
	RouteConfigName string        `json:"route_config_name,omitempty"`
}

// ConfigSource is envoy.config.core.v3.ConfigSource: only whether it is
// ADS and the API version are decoded.
type ConfigSource struct {
	ADS                *Empty     `json:"ads,omitempty"`
	ResourceAPIVersion APIVersion `json:"resource_api_version,omitempty"`
}

// HTTPFilter is an HTTP filter of the HCM.
type HTTPFilter struct {
	Name        string       `json:"name"`
	TypedConfig *TypedConfig `json:"typed_config,omitempty"`
	IsOptional  bool         `json:"is_optional,omitempty"`
	Disabled    bool         `json:"disabled,omitempty"`
}

// RouteConfiguration is envoy.config.route.v3.RouteConfiguration.
type RouteConfiguration struct {
	Name         string        `json:"name"`
	VirtualHosts []VirtualHost `json:"virtual_hosts,omitempty"`
}

// ResourceName returns r.Name.
func (r *RouteConfiguration) ResourceName() string { return r.Name }

// VirtualHost is envoy.config.route.v3.VirtualHost.
type VirtualHost struct {
	Name    string   `json:"name"`
	Domains []string `json:"domains,omitempty"`
	Routes  []Route  `json:"routes,omitempty"`
}

// Route is envoy.config.route.v3.Route. Of its action oneof only route is
// decoded; another action is recorded in Specifier.
type Route struct {
	Name  string      `json:"name,omitempty"`
	Match *RouteMatch `json:"match,omitempty"`
	// Specifier is the action set: "route", "redirect", "direct_response",
	// "filter_action" or "non_forwarding_action"; empty if none.
	Specifier string       `json:"-"`
	Route     *RouteAction `json:"route,omitempty"`
}

// RouteMatch is envoy.config.route.v3.RouteMatch.
type RouteMatch struct {
	// Specifier is the path_specifier member set: "prefix", "path",
	// "safe_regex", "path_separated_prefix", "connect_matcher" or
	// "path_match_policy"; empty if none.
	Specifier           string          `json:"-"`
	Prefix              string          `json:"prefix,omitempty"`
	Path                string          `json:"path,omitempty"`
	SafeRegex           *RegexMatcher   `json:"safe_regex,omitempty"`
	PathSeparatedPrefix string          `json:"path_separated_prefix,omitempty"`
	CaseSensitive       *bool           `json:"case_sensitive,omitempty"`
	Headers             []HeaderMatcher `json:"headers,omitempty"`
}

// RegexMatcher is envoy.type.matcher.v3.RegexMatcher.
type RegexMatcher struct {
	Regex string `json:"regex"`
}

// HeaderMatcher is envoy.config.route.v3.HeaderMatcher.
type HeaderMatcher struct {
	Name string `json:"name"`
	// Specifier is the header_match_specifier member set ("exact_match",
	// "safe_regex_match", "range_match", "present_match", "prefix_match",
	// "suffix_match", "contains_match", "string_match"); empty if none.
	Specifier                 string         `json:"-"`
	ExactMatch                string         `json:"exact_match,omitempty"`
	SafeRegexMatch            *RegexMatcher  `json:"safe_regex_match,omitempty"`
	RangeMatch                *Int64Range    `json:"range_match,omitempty"`
	PresentMatch              bool           `json:"present_match,omitempty"`
	PrefixMatch               string         `json:"prefix_match,omitempty"`
	SuffixMatch               string         `json:"suffix_match,omitempty"`
	ContainsMatch             string         `json:"contains_match,omitempty"`
	StringMatch               *StringMatcher `json:"string_match,omitempty"`
	InvertMatch               bool           `json:"invert_match,omitempty"`
	TreatMissingHeaderAsEmpty bool           `json:"treat_missing_header_as_empty,omitempty"`
}

// Int64Range is envoy.type.v3.Int64Range.
type Int64Range struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// StringMatcher is envoy.type.matcher.v3.StringMatcher.
type StringMatcher struct {
	// Specifier is the match_pattern member set ("exact", "prefix",
	// "suffix", "safe_regex", "contains", "custom"); empty if none.
	Specifier  string        `json:"-"`
	Exact      string        `json:"exact,omitempty"`
	Prefix     string        `json:"prefix,omitempty"`
	Suffix     string        `json:"suffix,omitempty"`
	SafeRegex  *RegexMatcher `json:"safe_regex,omitempty"`
	Contains   string        `json:"contains,omitempty"`
	IgnoreCase bool          `json:"ignore_case,omitempty"`
}

// RouteAction is envoy.config.route.v3.RouteAction.
type RouteAction struct {
	// Specifier is the cluster_specifier member set ("cluster",
	// "cluster_header", "weighted_clusters", "cluster_specifier_plugin",
	// "inline_cluster_specifier_plugin"); empty if none.
	Specifier        string           `json:"-"`
	Cluster          string           `json:"cluster,omitempty"`
	ClusterHeader    string           `json:"cluster_header,omitempty"`
	WeightedClusters *WeightedCluster `json:"weighted_clusters,omitempty"`
	Timeout          *Duration        `json:"timeout,omitempty"`
	RetryPolicy      *RetryPolicy     `json:"retry_policy,omitempty"`
	HashPolicy       []HashPolicy     `json:"hash_policy,omitempty"`
}

// WeightedCluster is envoy.config.route.v3.WeightedCluster.
type WeightedCluster struct {
	Clusters    []ClusterWeight `json:"clusters,omitempty"`
	TotalWeight *uint32         `json:"total_weight,omitempty"`
}

// ClusterWeight is one cluster of a WeightedCluster.
type ClusterWeight struct {
	Name   string  `json:"name"`
	Weight *uint32 `json:"weight,omitempty"`
}

// RetryPolicy is envoy.config.route.v3.RetryPolicy.
type RetryPolicy struct {
	RetryOn                       string               `json:"retry_on,omitempty"`
	NumRetries                    *uint32              `json:"num_retries,omitempty"`
	PerTryTimeout                 *Duration            `json:"per_try_timeout,omitempty"`
	RetryHostPredicate            []RetryHostPredicate `json:"retry_host_predicate,omitempty"`
	HostSelectionRetryMaxAttempts int64                `json:"host_selection_retry_max_attempts,omitempty"`
	RetriableStatusCodes          []uint32             `json:"retriable_status_codes,omitempty"`
}

// RetryHostPredicate names a retry host predicate extension.
type RetryHostPredicate struct {
	Name string `json:"name"`
}

// HashPolicy is envoy.config.route.v3.RouteAction.HashPolicy.
type HashPolicy struct {
	// Specifier is the policy_specifier member set ("header", "cookie",
	// "connection_properties", "query_parameter", "filter_state"); empty
	// if none.
	Specifier            string                    `json:"-"`
	Header               *HashHeader               `json:"header,omitempty"`
	Cookie               *HashCookie               `json:"cookie,omitempty"`
	ConnectionProperties *HashConnectionProperties `json:"connection_properties,omitempty"`
	QueryParameter       *HashQueryParameter       `json:"query_parameter,omitempty"`
	FilterState          *HashFilterState          `json:"filter_state,omitempty"`
	Terminal             bool                      `json:"terminal,omitempty"`
}

// HashHeader hashes a request header.
type HashHeader struct {
	HeaderName string `json:"header_name"`
}

// HashCookie hashes a cookie.
type HashCookie struct {
	Name string    `json:"name"`
	TTL  *Duration `json:"ttl,omitempty"`
	Path string    `json:"path,omitempty"`
}

// HashConnectionProperties hashes the source IP.
type HashConnectionProperties struct {
	SourceIP bool `json:"source_ip,omitempty"`
}

// HashQueryParameter hashes a query parameter.
type HashQueryParameter struct {
	Name string `json:"name"`
}

// HashFilterState hashes a filter state object.
type HashFilterState struct {
	Key string `json:"key"`
}

// Cluster is envoy.config.cluster.v3.Cluster.
type Cluster struct {
	Name string `json:"name"`
	// Type is the discovery type; ClusterType is set instead for a custom
	// cluster type.
	Type             DiscoveryType      `json:"type"`
	ClusterType      *CustomClusterType `json:"cluster_type,omitempty"`
	EDSClusterConfig *EDSClusterConfig  `json:"eds_cluster_config,omitempty"`
	ConnectTimeout   *Duration          `json:"connect_timeout,omitempty"`
	LBPolicy         LBPolicy           `json:"lb_policy"`
	CircuitBreakers  *CircuitBreakers   `json:"circuit_breakers,omitempty"`
	OutlierDetection *OutlierDetection  `json:"outlier_detection,omitempty"`
	CommonLBConfig   *CommonLBConfig    `json:"common_lb_config,omitempty"`
	// lb_config oneof.
	RingHashLBConfig     *RingHashLBConfig     `json:"ring_hash_lb_config,omitempty"`
	MaglevLBConfig       *MaglevLBConfig       `json:"maglev_lb_config,omitempty"`
	LeastRequestLBConfig *LeastRequestLBConfig `json:"least_request_lb_config,omitempty"`
	// TypedExtensionProtocolOptions maps extension names to their options.
	TypedExtensionProtocolOptions map[string]*ProtocolOptions `json:"typed_extension_protocol_options,omitempty"`
}

// ResourceName returns c.Name.
func (c *Cluster) ResourceName() string { return c.Name }

// CustomClusterType is a custom cluster discovery type.
type CustomClusterType struct {
	Name string `json:"name"`
}

// EDSClusterConfig is the cluster's eds_cluster_config.
type EDSClusterConfig struct {
	EDSConfig   *ConfigSource `json:"eds_config,omitempty"`
	ServiceName string        `json:"service_name,omitempty"`
}

// CircuitBreakers is envoy.config.cluster.v3.CircuitBreakers.
type CircuitBreakers struct {
	Thresholds []Thresholds `json:"thresholds,omitempty"`
}

// Thresholds are the circuit breaker limits of one priority.
type Thresholds struct {
	Priority           RoutingPriority `json:"priority"`
	MaxConnections     *uint32         `json:"max_connections,omitempty"`
	MaxPendingRequests *uint32         `json:"max_pending_requests,omitempty"`
	MaxRequests        *uint32         `json:"max_requests,omitempty"`
	MaxRetries         *uint32         `json:"max_retries,omitempty"`
}

// OutlierDetection is envoy.config.cluster.v3.OutlierDetection.
type OutlierDetection struct {
	Consecutive5xx                     *uint32   `json:"consecutive_5xx,omitempty"`
	Interval                           *Duration `json:"interval,omitempty"`
	BaseEjectionTime                   *Duration `json:"base_ejection_time,omitempty"`
	MaxEjectionPercent                 *uint32   `json:"max_ejection_percent,omitempty"`
	EnforcingConsecutive5xx            *uint32   `json:"enforcing_consecutive_5xx,omitempty"`
	EnforcingSuccessRate               *uint32   `json:"enforcing_success_rate,omitempty"`
	ConsecutiveGatewayFailure          *uint32   `json:"consecutive_gateway_failure,omitempty"`
	EnforcingConsecutiveGatewayFailure *uint32   `json:"enforcing_consecutive_gateway_failure,omitempty"`
	EnforcingFailurePercentage         *uint32   `json:"enforcing_failure_percentage,omitempty"`
	MaxEjectionTime                    *Duration `json:"max_ejection_time,omitempty"`
}

// CommonLBConfig is the cluster's common_lb_config.
type CommonLBConfig struct {
	HealthyPanicThreshold *Percent `json:"healthy_panic_threshold,omitempty"`
}

// Percent is envoy.type.v3.Percent.
type Percent struct {
	Value float64 `json:"value"`
}

// RingHashLBConfig is the cluster's ring_hash_lb_config.
type RingHashLBConfig struct {
	MinimumRingSize *uint64      `json:"minimum_ring_size,omitempty"`
	HashFunction    HashFunction `json:"hash_function"`
	MaximumRingSize *uint64      `json:"maximum_ring_size,omitempty"`
}

// MaglevLBConfig is the cluster's maglev_lb_config.
type MaglevLBConfig struct {
	TableSize *uint64 `json:"table_size,omitempty"`
}

// LeastRequestLBConfig is the cluster's least_request_lb_config.
type LeastRequestLBConfig struct {
	ChoiceCount *uint32 `json:"choice_count,omitempty"`
}

// ProtocolOptions is one typed_extension_protocol_options entry: its type
// URL and, for HTTPProtocolOptionsType, the decoded upstream protocol.
type ProtocolOptions struct {
	TypeURL string
	// The upstream_protocol_options oneof of HttpProtocolOptions.
	ExplicitHTTPConfig          *ExplicitHTTPConfig
	UseDownstreamProtocolConfig *Empty
	AutoConfig                  *Empty
}

// ExplicitHTTPConfig selects one upstream HTTP version.
type ExplicitHTTPConfig struct {
	HTTPProtocolOptions  *Empty `json:"http_protocol_options,omitempty"`
	HTTP2ProtocolOptions *Empty `json:"http2_protocol_options,omitempty"`
	HTTP3ProtocolOptions *Empty `json:"http3_protocol_options,omitempty"`
}

// ClusterLoadAssignment is envoy.config.endpoint.v3.ClusterLoadAssignment.
type ClusterLoadAssignment struct {
	ClusterName string                `json:"cluster_name"`
	Endpoints   []LocalityLBEndpoints `json:"endpoints,omitempty"`
}

// ResourceName returns c.ClusterName.
func (c *ClusterLoadAssignment) ResourceName() string { return c.ClusterName }

// LocalityLBEndpoints are the endpoints of one locality.
type LocalityLBEndpoints struct {
	Locality            *Locality    `json:"locality,omitempty"`
	LBEndpoints         []LBEndpoint `json:"lb_endpoints,omitempty"`
	LoadBalancingWeight *uint32      `json:"load_balancing_weight,omitempty"`
	Priority            uint32       `json:"priority,omitempty"`
}

// LBEndpoint is envoy.config.endpoint.v3.LbEndpoint. Of its
// host_identifier oneof, Endpoint or EndpointName is set.
type LBEndpoint struct {
	Endpoint            *Endpoint    `json:"endpoint,omitempty"`
	EndpointName        string       `json:"endpoint_name,omitempty"`
	HealthStatus        HealthStatus `json:"health_status"`
	LoadBalancingWeight *uint32      `json:"load_balancing_weight,omitempty"`
}

// Endpoint is envoy.config.endpoint.v3.Endpoint.
type Endpoint struct {
	Address  *Address `json:"address,omitempty"`
	Hostname string   `json:"hostname,omitempty"`
}

// Address is envoy.config.core.v3.Address. Of its oneof, SocketAddress or
// Pipe is decoded; an envoy_internal_address is recorded in Specifier.
type Address struct {
	// Specifier is the address member set ("socket_address", "pipe",
	// "envoy_internal_address"); empty if none.
	Specifier     string         `json:"-"`
	SocketAddress *SocketAddress `json:"socket_address,omitempty"`
	Pipe          *Pipe          `json:"pipe,omitempty"`
}

// SocketAddress is envoy.config.core.v3.SocketAddress.
type SocketAddress struct {
	Protocol SocketProtocol `json:"protocol,omitempty"`
	Address  string         `json:"address"`
	// Port specifier oneof: PortValue, or NamedPort if not empty.
	PortValue uint32 `json:"port_value,omitempty"`
	NamedPort string `json:"named_port,omitempty"`
}

// Pipe is a Unix domain socket address.
type Pipe struct {
	Path string `json:"path"`
}
