package xds

import (
	"cmp"
	"math"
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	cswrrv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/client_side_weighted_round_robin/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// Cluster defaults. Circuit breakers bound each client's load on one
// service; outlier detection ejects an instance after consecutive 5xx
// (gateway) errors. Success-rate ejection is off: a small fleet gives it no
// statistics to work with.
const (
	connectTimeout     = 2 * time.Second
	maxConnections     = 1024
	maxPendingRequests = 1024
	maxRequests        = 1024
	// maxRetries is no limit, as Istio sets it: each request's retries
	// are already bounded by its route (num_retries, per-try timeouts),
	// and Envoy's default of 3 retries in flight per cluster fails the
	// requests that happen to be 4th when an instance dies under load
	// (every request on it fails at once). A rule sets a limit with
	// circuit_breakers.max_retries.
	maxRetries         = math.MaxUint32
	consecutiveErrors  = 5
	odInterval         = 10 * time.Second
	odBaseEjection     = 30 * time.Second
	odMaxEjectionPct   = 50
	leastRequestChoice = 2
	ringMinSize        = 1024
	ringMaxSize        = 8 * 1024 * 1024 // gRPC's cap
)

// clusters returns every cluster, sorted by name: all EDS over ADS, each
// reading its load assignment through eds_cluster_config.service_name.
func (t *translator) clusters() []types.Resource {
	out := make([]types.Resource, 0, len(t.clusterSpecs))
	for _, name := range sortedKeys(t.clusterSpecs) {
		out = append(out, t.cluster(name, t.clusterSpecs[name]))
	}
	return out
}

func (t *translator) cluster(name string, spec clusterSpec) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
			EdsConfig:   adsConfigSource(),
			ServiceName: spec.cla,
		},
		ConnectTimeout: durationpb.New(connectTimeout),
		// Unroutable endpoints (unhealthy, suspect, draining, dead) never
		// take traffic: no panic routing.
		CommonLbConfig:  &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 0}},
		CircuitBreakers: t.circuitBreakers(spec.tune),
		OutlierDetection: &clusterv3.OutlierDetection{
			Consecutive_5Xx:            wrapperspb.UInt32(consecutiveErrors),
			ConsecutiveGatewayFailure:  wrapperspb.UInt32(consecutiveErrors),
			Interval:                   durationpb.New(odInterval),
			BaseEjectionTime:           durationpb.New(odBaseEjection),
			MaxEjectionPercent:         wrapperspb.UInt32(odMaxEjectionPct),
			EnforcingSuccessRate:       wrapperspb.UInt32(0),
			EnforcingConsecutive_5Xx:   wrapperspb.UInt32(100),
			EnforcingFailurePercentage: wrapperspb.UInt32(0),
		},
	}
	// Slow start and stall detection are for proxies: gRPC has neither.
	var slow *shoalv1.SlowStart
	if spec.tune != nil && t.caps.HTTPProxy {
		slow = spec.tune.slow
		c.Metadata = stallMetadata(spec.tune.stall)
	}
	switch spec.kind {
	case lbRoundRobin:
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
		if slow != nil {
			c.LbConfig = &clusterv3.Cluster_RoundRobinLbConfig_{RoundRobinLbConfig: &clusterv3.Cluster_RoundRobinLbConfig{
				SlowStartConfig: slowStartConfig(slow),
			}}
		}
	case lbLeastRequest:
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
		c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{
			ChoiceCount:     wrapperspb.UInt32(leastRequestChoice),
			SlowStartConfig: slowStartConfig(slow),
		}}
	case lbRingHash:
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
			// gRPC takes only xxHash (gRFC A42).
			HashFunction:    clusterv3.Cluster_RingHashLbConfig_XX_HASH,
			MinimumRingSize: wrapperspb.UInt64(ringMinSize),
			MaximumRingSize: wrapperspb.UInt64(ringMaxSize),
		}}
	case lbMaglev:
		c.LbPolicy = clusterv3.Cluster_MAGLEV
	case lbRandom:
		c.LbPolicy = clusterv3.Cluster_RANDOM
	case lbLeastLoaded:
		c.LoadBalancingPolicy = leastLoadedPolicy(slow)
	}
	if spec.balance != 0 {
		// Bounded loads (issue 18): Envoy's hash_balance_factor, for ring
		// hash and maglev alike.
		c.CommonLbConfig.ConsistentHashingLbConfig = &clusterv3.Cluster_CommonLbConfig_ConsistentHashingLbConfig{
			HashBalanceFactor: wrapperspb.UInt32(spec.balance),
		}
	}
	if svc := t.subsets[spec.cla].service; t.caps.HTTPProxy && t.hasMTLS(svc) {
		c.TransportSocketMatches = t.mtlsMatches(svc)
	} else if !t.caps.HTTPProxy {
		c.TransportSocket = t.grpcTransportSocket(svc)
	}
	if t.caps.HTTPProxy && t.speaksTCP(t.subsets[spec.cla].service) {
		c.Metadata = tcpClusterMetadata()
	}
	if t.caps.HTTPProxy && t.speaksHTTP2(t.subsets[spec.cla].service) {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&httpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
				}},
			}),
		}
	}
	return c
}

// ClusterMetadataKey is the filter_metadata key of shoal's own cluster
// metadata; its field "protocol" is "tcp" for a service whose instances
// all declare tcp, which a sidecar's --upstream port then proxies as raw
// bytes (Envoy's consumers ignore it: TCP is a listener's tcp_proxy
// there).
const ClusterMetadataKey = "shoal"

func tcpClusterMetadata() *corev3.Metadata {
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		ClusterMetadataKey: {Fields: map[string]*structpb.Value{"protocol": structpb.NewStringValue(string(registry.ProtocolTCP))}},
	}}
}

// speaksTCP reports whether a proxy must proxy raw TCP to the service:
// when every instance declares tcp.
func (t *translator) speaksTCP(svc string) bool {
	eps := t.services[svc]
	return len(eps) > 0 && !slices.ContainsFunc(eps, func(ep registry.Endpoint) bool {
		return ep.Protocol != registry.ProtocolTCP
	})
}

// speaksHTTP2 reports whether a proxy must use HTTP/2 upstream: when every
// instance of the service declares http2 or grpc.
func (t *translator) speaksHTTP2(svc string) bool {
	eps := t.services[svc]
	return len(eps) > 0 && !slices.ContainsFunc(eps, func(ep registry.Endpoint) bool {
		return ep.Protocol != registry.ProtocolHTTP2 && ep.Protocol != registry.ProtocolGRPC
	})
}

func adsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

// sortByName sorts resources by their xDS name.
func sortByName(rs []types.Resource) {
	slices.SortFunc(rs, func(a, b types.Resource) int {
		return cmp.Compare(cache.GetResourceName(a), cache.GetResourceName(b))
	})
}

// Least loaded (issue 17) as Envoy's client_side_weighted_round_robin
// (gRFC A58): weights from the ORCA reports backends put on responses
// (endpoint-load-metrics), qps / (utilization + penalty × eps/qps). The
// blackout is shorter than A58's 10 s default so that a new instance's
// weight counts within seconds; expiration and update period are A58's.
const (
	leastLoadedBlackout   = time.Second
	leastLoadedExpiration = 3 * time.Minute
	leastLoadedUpdate     = time.Second
	leastLoadedPenalty    = 1.0
)

// leastLoadedPolicy is the load_balancing_policy of a least_loaded cluster.
// When it is set Envoy and gRPC ignore lb_policy (gRFC A52).
// Envoy's client_side_weighted_round_robin takes a slow_start_config of
// its own (common.v3.SlowStartConfig); gRPC ignores it.
func leastLoadedPolicy(slow *shoalv1.SlowStart) *clusterv3.LoadBalancingPolicy {
	return &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{{
		TypedExtensionConfig: &corev3.TypedExtensionConfig{
			Name: "envoy.load_balancing_policies.client_side_weighted_round_robin",
			TypedConfig: mustAny(&cswrrv3.ClientSideWeightedRoundRobin{
				BlackoutPeriod:          durationpb.New(leastLoadedBlackout),
				WeightExpirationPeriod:  durationpb.New(leastLoadedExpiration),
				WeightUpdatePeriod:      durationpb.New(leastLoadedUpdate),
				ErrorUtilizationPenalty: wrapperspb.Float(leastLoadedPenalty),
				SlowStartConfig:         commonSlowStartConfig(slow),
			}),
		},
	}}}
}
