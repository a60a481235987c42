// Package xdsres reads the Envoy v3 resources the sidecar subscribes to
// with the protobuf code generated from a trimmed copy of Envoy's protos
// (package sidecar/internal/xdspb, issue 12): it maps Envoy's type URLs to
// the generated messages, unmarshals (unknown fields discarded), checks the
// validation rules Envoy's protos declare for the fields the sidecar reads,
// and prints resources as Envoy's /config_dump does.
//
// To read a field the subset does not have yet: add it to
// tools/protosubset/envoy.keep, run `make proto`, read it with the
// generated getter, and add its rules to Validate.
package xdsres

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	clusterv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/cluster/v3"
	endpointv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/endpoint/v3"
	listenerv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/listener/v3"
	routev3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/route/v3"
	rbacfilterv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/extensions/filters/network/http_connection_manager/v3"
	cswrrv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/extensions/load_balancing_policies/client_side_weighted_round_robin/v3"
	httpv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/extensions/upstreams/http/v3"
)

// Type URLs of the resources the sidecar subscribes to, and of the nested
// configurations it reads. They are Envoy's: the wire never sees the
// subset's own proto names.
const (
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

	// HCMType is the HTTP connection manager network filter's config.
	HCMType = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	// HTTPProtocolOptionsType is the upstream HTTP protocol options of a
	// cluster (typed_extension_protocol_options).
	HTTPProtocolOptionsType = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	// HTTPProtocolOptionsKey is the typed_extension_protocol_options key
	// under which HTTPProtocolOptionsType is read.
	HTTPProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	// WRRType is Envoy's client_side_weighted_round_robin load-balancing
	// policy (gRFC A58), the sidecar's least_loaded strategy.
	WRRType = "type.googleapis.com/envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin"
)

// ADS gRPC method names.
const (
	StreamAggregatedResourcesMethod = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
	DeltaAggregatedResourcesMethod  = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
)

// subsetPrefix is the proto package prefix of the trimmed copies:
// envoy.config.cluster.v3.Cluster is shoal.xds.envoy.config.cluster.v3.Cluster.
const subsetPrefix = "shoal.xds."

// ErrUnsupportedType is returned for a type URL the subset has no message for.
var ErrUnsupportedType = errors.New("xdsres: unsupported type")

// unmarshal reads the wire form of Envoy messages into the generated
// subset: fields the subset does not have are dropped, not kept as unknown
// bytes (the raw bytes are kept by the caller when it needs them).
var unmarshal = proto.UnmarshalOptions{DiscardUnknown: true}

// messageType returns the generated subset type of an Envoy type URL
// ("type.googleapis.com/envoy.config.cluster.v3.Cluster").
func messageType(typeURL string) (protoreflect.MessageType, error) {
	name := typeURL[strings.LastIndexByte(typeURL, '/')+1:]
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(subsetPrefix + name))
	if err != nil || !strings.HasPrefix(name, "envoy.") {
		return nil, fmt.Errorf("%w %q", ErrUnsupportedType, typeURL)
	}
	return mt, nil
}

// UnmarshalAny decodes an Any holding an Envoy message into the subset's
// message of the same name.
func UnmarshalAny(a *anypb.Any) (proto.Message, error) {
	mt, err := messageType(a.GetTypeUrl())
	if err != nil {
		return nil, err
	}
	m := mt.New().Interface()
	if err := unmarshal.Unmarshal(a.GetValue(), m); err != nil {
		return nil, err
	}
	return m, nil
}

// Decode decodes one resource of type typeURL from its wire form and
// validates it (see Validate). A validation error comes with the decoded
// resource, so the caller can name it; a wire error comes with nil.
func Decode(typeURL string, b []byte) (proto.Message, error) {
	m, err := Unmarshal(typeURL, b)
	if err != nil {
		return nil, err
	}
	return m, Validate(m)
}

// Name returns the xDS name of a resource: name, or cluster_name for a
// ClusterLoadAssignment.
func Name(m proto.Message) string {
	switch m := m.(type) {
	case *listenerv3.Listener:
		return m.GetName()
	case *routev3.RouteConfiguration:
		return m.GetName()
	case *clusterv3.Cluster:
		return m.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return m.GetClusterName()
	}
	return ""
}

// HCMs returns the HTTP connection managers of l: those of its default
// filter chain, its filter chains and its API listener, in that order.
// Filters of other types are skipped; an HCM that does not decode is an
// error.
func HCMs(l *listenerv3.Listener) ([]*hcmv3.HttpConnectionManager, error) {
	var out []*hcmv3.HttpConnectionManager
	var errs []error
	add := func(a *anypb.Any) {
		if a.GetTypeUrl() != HCMType {
			return
		}
		h := &hcmv3.HttpConnectionManager{}
		if err := unmarshal.Unmarshal(a.GetValue(), h); err != nil {
			errs = append(errs, fmt.Errorf("http connection manager: %w", err))
			return
		}
		out = append(out, h)
	}
	chains := l.GetFilterChains()
	if d := l.GetDefaultFilterChain(); d != nil {
		chains = append([]*listenerv3.FilterChain{d}, chains...)
	}
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			add(f.GetTypedConfig())
		}
	}
	if a := l.GetApiListener().GetApiListener(); a != nil {
		add(a)
	}
	return out, errors.Join(errs...)
}

// HTTPProtocolOptions returns the cluster's upstream HTTP protocol options
// (typed_extension_protocol_options[HTTPProtocolOptionsKey]), nil if unset.
func HTTPProtocolOptions(c *clusterv3.Cluster) (*httpv3.HttpProtocolOptions, error) {
	a := c.GetTypedExtensionProtocolOptions()[HTTPProtocolOptionsKey]
	if a == nil {
		return nil, nil
	}
	if a.GetTypeUrl() != HTTPProtocolOptionsType {
		return nil, nil // another extension's options under that key: none of ours
	}
	o := &httpv3.HttpProtocolOptions{}
	if err := unmarshal.Unmarshal(a.GetValue(), o); err != nil {
		return nil, fmt.Errorf("typed_extension_protocol_options[%q]: %w", HTTPProtocolOptionsKey, err)
	}
	return o, nil
}

// Unmarshal decodes a resource of type typeURL that was validated when it
// was accepted (a held resource read again from its bytes): no validation.
func Unmarshal(typeURL string, b []byte) (proto.Message, error) {
	m, err := newResource(typeURL)
	if err != nil {
		return nil, err
	}
	if err := unmarshal.Unmarshal(b, m); err != nil {
		return nil, err
	}
	return m, nil
}

func newResource(typeURL string) (proto.Message, error) {
	switch typeURL {
	case ListenerType:
		return &listenerv3.Listener{}, nil
	case RouteType:
		return &routev3.RouteConfiguration{}, nil
	case ClusterType:
		return &clusterv3.Cluster{}, nil
	case EndpointType:
		return &endpointv3.ClusterLoadAssignment{}, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnsupportedType, typeURL)
}

// ErrNoSupportedPolicy is returned by LoadBalancingPolicy when a cluster's
// load_balancing_policy lists no policy the sidecar implements.
var ErrNoSupportedPolicy = errors.New("xdsres: load_balancing_policy has no supported policy")

// LoadBalancingPolicy returns the first policy of c.load_balancing_policy
// the sidecar implements, as Envoy and gRPC pick the first they support
// (gRFC A52). Today that is client_side_weighted_round_robin only. It
// returns nil, nil when the field is unset (lb_policy applies).
func LoadBalancingPolicy(c *clusterv3.Cluster) (*cswrrv3.ClientSideWeightedRoundRobin, error) {
	ps := c.GetLoadBalancingPolicy().GetPolicies()
	if len(ps) == 0 {
		return nil, nil
	}
	for _, p := range ps {
		a := p.GetTypedExtensionConfig().GetTypedConfig()
		if a.GetTypeUrl() != WRRType {
			continue
		}
		w := &cswrrv3.ClientSideWeightedRoundRobin{}
		if err := unmarshal.Unmarshal(a.GetValue(), w); err != nil {
			return nil, fmt.Errorf("load_balancing_policy %q: %w", p.GetTypedExtensionConfig().GetName(), err)
		}
		return w, nil
	}
	return nil, ErrNoSupportedPolicy
}

// RBAC per-route configuration of a virtual host (authorization policies).
const (
	// RBACFilterName is the typed_per_filter_config key of the RBAC filter.
	RBACFilterName = "envoy.filters.http.rbac"
	// RBACPerRouteType is the type URL of its per-route configuration.
	RBACPerRouteType = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
	// FilterConfigType wraps a per-filter config (optional or not).
	FilterConfigType = "type.googleapis.com/envoy.config.route.v3.FilterConfig"
)

// RBACPerRoute returns the RBAC per-route configuration of vh
// (typed_per_filter_config[RBACFilterName], bare or in a FilterConfig),
// nil if unset.
func RBACPerRoute(vh *routev3.VirtualHost) (*rbacfilterv3.RBACPerRoute, error) {
	a := vh.GetTypedPerFilterConfig()[RBACFilterName]
	if a == nil {
		return nil, nil
	}
	if a.GetTypeUrl() == FilterConfigType {
		fc := &routev3.FilterConfig{}
		if err := unmarshal.Unmarshal(a.GetValue(), fc); err != nil {
			return nil, fmt.Errorf("typed_per_filter_config[%q]: %w", RBACFilterName, err)
		}
		a = fc.GetConfig()
	}
	if a.GetTypeUrl() != RBACPerRouteType {
		return nil, fmt.Errorf("typed_per_filter_config[%q]: type %q, want %q", RBACFilterName, a.GetTypeUrl(), RBACPerRouteType)
	}
	o := &rbacfilterv3.RBACPerRoute{}
	if err := unmarshal.Unmarshal(a.GetValue(), o); err != nil {
		return nil, fmt.Errorf("typed_per_filter_config[%q]: %w", RBACFilterName, err)
	}
	return o, nil
}
