package xdsres_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	cswrrv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/client_side_weighted_round_robin/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/shoal-mesh/shoal/controlplane/xds"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
	xdsclusterv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/cluster/v3"
	xdsroutev3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/route/v3"
	"github.com/shoal-mesh/shoal/sidecar/internal/xdsres"
)

// typeURLOf returns the xDS type URL of a go-control-plane resource.
func typeURLOf(t *testing.T, m proto.Message) string {
	t.Helper()
	switch m.(type) {
	case *listenerv3.Listener:
		return xdsres.ListenerType
	case *routev3.RouteConfiguration:
		return xdsres.RouteType
	case *clusterv3.Cluster:
		return xdsres.ClusterType
	case *endpointv3.ClusterLoadAssignment:
		return xdsres.EndpointType
	}
	t.Fatalf("unexpected message %T", m)
	return ""
}

// restrict clears, in place, every field of m that the subset message
// described by sub does not have, recursively: what is left is what the
// subset must read. A oneof member the subset holds as Opaque keeps its
// presence and loses its content. Anys are compared as bytes.
func restrict(m protoreflect.Message, sub protoreflect.MessageDescriptor) {
	m.SetUnknown(nil) // the subset discards unknown fields
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		sf := sub.Fields().ByNumber(fd.Number())
		switch {
		case sf == nil || sf.Name() != fd.Name():
			m.Clear(fd)
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				restrict(mv.Message(), sf.MapValue().Message())
				return true
			})
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				restrict(v.List().Get(i).Message(), sf.Message())
			}
		case !fd.IsMap() && !fd.IsList() && fd.Message() != nil:
			restrict(v.Message(), sf.Message())
		}
		return true
	})
}

// checkDecode is the differential check against go-control-plane: m (a
// go-control-plane message) is marshalled, decoded by the sidecar's
// subset, marshalled again and read back with go-control-plane's types;
// that must equal m less the fields the subset does not keep. wantErr, if
// set, must be in the validation error.
func checkDecode(t *testing.T, m proto.Message, wantErr string) {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := xdsres.Decode(typeURLOf(t, m), b)
	name := xdsres.Name(got)
	switch {
	case got == nil:
		t.Fatalf("Decode(%T): %v", m, err)
	case wantErr == "" && err != nil:
		t.Fatalf("Decode(%s): %v", name, err)
	case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
		t.Fatalf("Decode(%s) error = %v, want %q", name, err, wantErr)
	}
	want := proto.Clone(m)
	restrict(want.ProtoReflect(), got.ProtoReflect().Descriptor())
	back := m.ProtoReflect().New().Interface()
	b2, err := proto.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(b2, back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, back, protocmp.Transform()); diff != "" {
		t.Errorf("Decode(%s) differs from go-control-plane (-want +got):\n%s", name, diff)
	}
}

// translatorInputs are control-plane inputs that exercise every strategy,
// hash key, split, match, retry, health status and protocol.
func translatorInputs() map[string]xds.Input {
	ep := func(svc, id, addr string, port int, h registry.Health, proto registry.Protocol, zone string, w int, md map[string]string) registry.Endpoint {
		return registry.Endpoint{Instance: &registry.Instance{ID: id, Service: svc, Address: addr, Port: port,
			Protocol: proto, Zone: zone, Weight: w, Metadata: md}, Health: h}
	}
	fleet := []registry.Endpoint{
		ep("orders", "o-1", "10.0.0.1", 3001, registry.HealthHealthy, registry.ProtocolHTTP, "a", 1, map[string]string{"version": "v1"}),
		ep("orders", "o-2", "10.0.0.2", 3001, registry.HealthUnknown, registry.ProtocolHTTP, "b", 5, map[string]string{"version": "v2"}),
		ep("orders", "o-3", "10.0.0.3", 3001, registry.HealthUnhealthy, registry.ProtocolHTTP, "", 0, nil),
		ep("orders", "o-4", "10.0.0.4", 3001, registry.HealthDraining, registry.ProtocolHTTP, "", 0, nil),
		ep("orders", "o-5", "10.0.0.5", 3001, registry.HealthSuspect, registry.ProtocolHTTP, "", 0, nil),
		ep("users", "u-1", "::1", 4001, registry.HealthHealthy, registry.ProtocolHTTP, "", 0, nil),
		ep("grpcsvc", "g-1", "10.0.9.1", 50051, registry.HealthHealthy, registry.ProtocolGRPC, "", 0, nil),
	}
	rule := func(s shoalv1.Strategy, hk *shoalv1.HashKey, dests ...*shoalv1.Destination) *shoalv1.Rule {
		return &shoalv1.Rule{Strategy: s, HashKey: hk, Destinations: dests}
	}
	to := func(svc string, w uint32, subset ...string) *shoalv1.Destination {
		d := &shoalv1.Destination{Service: svc, Weight: int32(w)}
		if len(subset) == 2 {
			d.Subset = map[string]string{subset[0]: subset[1]}
		}
		return d
	}
	route := func(name string, hosts []string, rules ...*shoalv1.Rule) *shoalv1.Route {
		return &shoalv1.Route{Name: name, Hosts: hosts, Rules: rules}
	}
	return map[string]xds.Input{
		"empty":    {},
		"services": {Endpoints: fleet},
		"routes": {Endpoints: fleet, Routes: []*shoalv1.Route{
			route("lr", []string{"lr.example.com"}, rule(shoalv1.Strategy_STRATEGY_LEAST_REQUEST, nil, to("orders", 0))),
			route("ip", []string{"ip.example.com"}, rule(shoalv1.Strategy_STRATEGY_IP_HASH, &shoalv1.HashKey{Key: &shoalv1.HashKey_SourceIp{SourceIp: true}}, to("orders", 0))),
			route("ring", []string{"orders"}, rule(shoalv1.Strategy_STRATEGY_RING_HASH, &shoalv1.HashKey{Key: &shoalv1.HashKey_Header{Header: "X-User"}}, to("orders", 0))),
			route("maglev", []string{"maglev.example.com"}, rule(shoalv1.Strategy_STRATEGY_MAGLEV, &shoalv1.HashKey{Key: &shoalv1.HashKey_Cookie{Cookie: "session"}}, to("orders", 0))),
			route("random", []string{"random.example.com"}, rule(shoalv1.Strategy_STRATEGY_RANDOM, nil, to("users", 0))),
			route("canary", []string{"canary.example.com", "*.canary.example.com"}, &shoalv1.Rule{
				Match: &shoalv1.Match{
					Path:    &shoalv1.Match_Prefix{Prefix: "/api/"},
					Methods: []string{"GET", "POST"},
					Headers: []*shoalv1.HeaderMatch{
						{Name: "X-Canary", Value: &shoalv1.HeaderMatch_Exact{Exact: "1"}},
						{Name: "x-debug", Invert: true},
						{Name: "x-tenant", Value: &shoalv1.HeaderMatch_Regex{Regex: "^t-[0-9]+$"}},
						{Name: "x-pre", Value: &shoalv1.HeaderMatch_Prefix{Prefix: "p"}},
					},
				},
				Destinations: []*shoalv1.Destination{to("orders", 90, "version", "v1"), to("orders", 10, "version", "v2")},
				Timeout:      durationpb.New(3 * time.Second),
				Retry: &shoalv1.RetryPolicy{Attempts: 3, PerTryTimeout: durationpb.New(500 * time.Millisecond),
					RetryOn: []string{"5xx", "retriable-status-codes"}, RetriableStatusCodes: []uint32{503, 429}},
			}, &shoalv1.Rule{
				Match:        &shoalv1.Match{Path: &shoalv1.Match_Exact{Exact: "/healthz"}},
				Destinations: []*shoalv1.Destination{to("orders", 1), to("users", 1)},
			}, &shoalv1.Rule{
				Match:        &shoalv1.Match{Path: &shoalv1.Match_Regex{Regex: "/v[0-9]+/.*"}},
				Destinations: []*shoalv1.Destination{to("grpcsvc", 0)},
			}),
		}},
	}
}

func TestDecodeTranslatorOutput(t *testing.T) {
	for name, in := range translatorInputs() {
		for _, caps := range []xds.Capabilities{xds.CapabilitiesEnvoy, xds.CapabilitiesGRPCGo, xds.CapabilitiesMinimal} {
			t.Run(name+"/"+caps.Profile, func(t *testing.T) {
				res, _ := xds.Translate(in, caps)
				n := 0
				for _, rs := range [][]types.Resource{res.Listeners, res.Routes, res.Clusters, res.Endpoints} {
					for _, r := range rs {
						checkDecode(t, r, "")
						n++
					}
				}
				if n == 0 && name != "empty" {
					t.Fatal("no resources")
				}
			})
		}
	}
}

// TestDecodeGoldenFiles decodes every resource of the control plane's
// golden translation files (controlplane/xds/testdata).
func TestDecodeGoldenFiles(t *testing.T) {
	files, err := filepath.Glob("../../../controlplane/xds/testdata/*.golden")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	total := 0
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			for _, a := range goldenResources(t, path) {
				m, err := a.UnmarshalNew()
				if err != nil {
					t.Fatal(err)
				}
				checkDecode(t, m, "")
				total++
			}
		})
	}
	if total < 100 {
		t.Errorf("decoded %d golden resources, want the lot", total)
	}
}

// goldenResources reads the listener, route, cluster and endpoint Anys of
// a golden file ("# group" lines followed by protojson objects).
func goldenResources(t *testing.T, path string) []*anypb.Any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*anypb.Any
	var group string
	var buf bytes.Buffer
	flush := func() {
		defer buf.Reset()
		if group == "statuses" {
			return
		}
		dec := json.NewDecoder(&buf)
		for dec.More() {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			a := &anypb.Any{}
			if err := protojson.Unmarshal(raw, a); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			out = append(out, a)
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if g, ok := strings.CutPrefix(sc.Text(), "# "); ok {
			flush()
			group = g
			continue
		}
		buf.WriteString(sc.Text() + "\n")
	}
	flush()
	return out
}

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func socket(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

// TestDecodeOddFields covers members of oneofs and fields the translator
// does not emit.
func TestDecodeOddFields(t *testing.T) {
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "x", RouteSpecifier: &hcmv3.HttpConnectionManager_ScopedRoutes{}}
	cases := []struct {
		name    string
		m       proto.Message
		wantErr string
	}{
		{name: "listener with default filter chain, api listener and unknown fields", m: &listenerv3.Listener{
			Name:               "l",
			Address:            &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/tmp/s"}}},
			StatPrefix:         "ignored",
			DefaultFilterChain: &listenerv3.FilterChain{Name: "d", Filters: []*listenerv3.Filter{{Name: "tcp", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, &wrapperspb.StringValue{Value: "x"})}}}},
			ApiListener:        &listenerv3.ApiListener{ApiListener: anyOf(t, hcm)},
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, &hcmv3.HttpConnectionManager{
				StatPrefix: "s", RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{Name: "inline"}},
				HttpFilters: []*hcmv3.HttpFilter{{Name: "f", IsOptional: true, Disabled: true}},
				ServerName:  "unknown to the decoder",
			})}}}}},
		}},
		{name: "route with every matcher", m: &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{
			Name: "vh", Domains: []string{"a", "b"}, RequireTls: routev3.VirtualHost_ALL,
			Routes: []*routev3.Route{
				{Name: "redirect", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/x"}}, Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{}}},
				{Name: "direct", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/p"}}, Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200}}},
				{Name: "headers", Match: &routev3.RouteMatch{
					PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: ""},
					CaseSensitive: wrapperspb.Bool(false),
					Headers: []*routev3.HeaderMatcher{
						{Name: "a", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "1"}},
						{Name: "b", HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{Regex: "x+"}}},
						{Name: "c", HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{RangeMatch: &typev3.Int64Range{Start: -1, End: 10}}},
						{Name: "d", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}, InvertMatch: true},
						{Name: "e", HeaderMatchSpecifier: &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: "p"}},
						{Name: "f", HeaderMatchSpecifier: &routev3.HeaderMatcher_SuffixMatch{SuffixMatch: "s"}},
						{Name: "g", HeaderMatchSpecifier: &routev3.HeaderMatcher_ContainsMatch{ContainsMatch: "c"}, TreatMissingHeaderAsEmpty: true},
						{Name: "h", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: "z"}, IgnoreCase: true}}},
						{Name: "i", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "z"}}}},
						{Name: "j"},
					},
				}, Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_ClusterHeader{ClusterHeader: "x-cluster"},
					Timeout:          durationpb.New(-1500 * time.Millisecond),
					RetryPolicy:      &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(0), RetriableStatusCodes: []uint32{500, 1 << 20}},
					HashPolicy: []*routev3.RouteAction_HashPolicy{
						{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: "q"}}, Terminal: true},
						{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: "c", Ttl: durationpb.New(time.Hour), Path: "/"}}},
					},
					PrefixRewrite: "/unknown-to-the-decoder",
				}}},
			},
		}}}},
		{name: "cluster with maglev, custom type and http1", m: &clusterv3.Cluster{
			Name:                 "c",
			ClusterDiscoveryType: &clusterv3.Cluster_ClusterType{ClusterType: &clusterv3.Cluster_CustomClusterType{Name: "custom"}},
			ConnectTimeout:       durationpb.New(time.Second),
			LbPolicy:             clusterv3.Cluster_MAGLEV,
			LbConfig:             &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(65537)}},
			DnsLookupFamily:      clusterv3.Cluster_V4_ONLY,
			TypedExtensionProtocolOptions: map[string]*anypb.Any{
				xdsres.HTTPProtocolOptionsKey: anyOf(t, &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}}}}}),
				"other": anyOf(t, &wrapperspb.StringValue{Value: "x"}),
				"auto":  anyOf(t, &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_AutoConfig{AutoConfig: &httpv3.HttpProtocolOptions_AutoHttpConfig{}}}),
			},
		}},
		{name: "cluster with ring hash limits", m: &clusterv3.Cluster{
			Name: "r", ConnectTimeout: durationpb.New(time.Second), LbPolicy: clusterv3.Cluster_RING_HASH,
			LbConfig: &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
				MinimumRingSize: wrapperspb.UInt64(8), MaximumRingSize: wrapperspb.UInt64(16), HashFunction: clusterv3.Cluster_RingHashLbConfig_MURMUR_HASH_2}},
			CommonLbConfig: &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 50.5}},
			CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{
				{Priority: corev3.RoutingPriority_HIGH, MaxRequests: wrapperspb.UInt32(7)}, {MaxRetries: wrapperspb.UInt32(0)}}},
			OutlierDetection: &clusterv3.OutlierDetection{MaxEjectionTime: durationpb.New(time.Minute), EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100)},
		}},
		{name: "endpoints with names, pipes and priorities", m: &endpointv3.ClusterLoadAssignment{
			ClusterName: "e",
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				Locality: &corev3.Locality{Region: "r", Zone: "z", SubZone: "s"}, Priority: 2,
				LbEndpoints: []*endpointv3.LbEndpoint{
					{HostIdentifier: &endpointv3.LbEndpoint_EndpointName{EndpointName: "named"}, HealthStatus: corev3.HealthStatus_DEGRADED},
					{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
						Address:  &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "h", PortSpecifier: &corev3.SocketAddress_NamedPort{NamedPort: "http"}, Protocol: corev3.SocketAddress_UDP}}},
						Hostname: "id-1",
					}}, HealthStatus: corev3.HealthStatus_TIMEOUT, LoadBalancingWeight: wrapperspb.UInt32(3)},
					{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socket("10.1.1.1", 80)}}},
				},
			}},
			Policy: &endpointv3.ClusterLoadAssignment_Policy{OverprovisioningFactor: wrapperspb.UInt32(140)},
		}},
		// Validation: the decoded resource comes with the error.
		{name: "cluster with a negative connect timeout", m: &clusterv3.Cluster{Name: "bad", ConnectTimeout: durationpb.New(-time.Second)}, wantErr: "Cluster.ConnectTimeout: value must be greater than 0s"},
		{name: "cluster with an undefined lb policy", m: &clusterv3.Cluster{Name: "bad", LbPolicy: 99}, wantErr: "Cluster.LbPolicy"},
		{name: "least request with one choice", m: &clusterv3.Cluster{Name: "bad", LbConfig: &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{ChoiceCount: wrapperspb.UInt32(1)}}}, wantErr: "ChoiceCount"},
		{name: "weighted round robin with a negative penalty", m: &clusterv3.Cluster{Name: "bad", LoadBalancingPolicy: &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{{
			TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: "wrr", TypedConfig: anyOf(t, &cswrrv3.ClientSideWeightedRoundRobin{ErrorUtilizationPenalty: wrapperspb.Float(-1)})}}}}},
			wantErr: "ClientSideWeightedRoundRobin.ErrorUtilizationPenalty"},
		{name: "load balancing policy the sidecar lacks", m: &clusterv3.Cluster{Name: "bad", LoadBalancingPolicy: &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{{
			TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: "x", TypedConfig: anyOf(t, &wrapperspb.StringValue{})}}}}},
			wantErr: "no supported policy"},
		{name: "outlier ejection over 100 percent", m: &clusterv3.Cluster{Name: "bad", OutlierDetection: &clusterv3.OutlierDetection{MaxEjectionPercent: wrapperspb.UInt32(101)}}, wantErr: "MaxEjectionPercent"},
		{name: "assignment without a name", m: &endpointv3.ClusterLoadAssignment{}, wantErr: "ClusterLoadAssignment.ClusterName"},
		{name: "endpoint with weight 0 and port over 65535", m: &endpointv3.ClusterLoadAssignment{ClusterName: "x", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{LoadBalancingWeight: wrapperspb.UInt32(0), HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socket("h", 70000)}}}}}}},
			wantErr: "LbEndpoint.LoadBalancingWeight: value must be greater than or equal to 1; invalid SocketAddress.PortValue"},
		{name: "route without action", m: &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"},
			Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}}}}}}, wantErr: "Route.Action: value is required"},
		{name: "virtual host without domains", m: &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "v"}}}, wantErr: "VirtualHost.Domains"},
		{name: "hcm without route specifier", m: &listenerv3.Listener{Name: "l", FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "h",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, &hcmv3.HttpConnectionManager{StatPrefix: "s"})}}}}}}, wantErr: "HttpConnectionManager.RouteSpecifier"},
		{name: "api listener that is no hcm", m: &listenerv3.Listener{Name: "l", ApiListener: &listenerv3.ApiListener{ApiListener: anyOf(t, &wrapperspb.StringValue{})}}, wantErr: "Listener.ApiListener"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkDecode(t, tc.m, tc.wantErr) })
	}
}

func TestDecodeRejectsMalformedInput(t *testing.T) {
	good, err := proto.Marshal(&clusterv3.Cluster{Name: "orders", ConnectTimeout: durationpb.New(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	tag := func(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }
	cases := map[string][]byte{
		"truncated":                   good[:len(good)-1],
		"length past the end":         append(tag(1, protowire.BytesType), 10, 'a'),
		"name sent as a varint":       append(tag(1, protowire.VarintType), 1),
		"lb_policy sent as bytes":     append(tag(6, protowire.BytesType), 0),
		"invalid UTF-8 name":          append(tag(1, protowire.BytesType), 1, 0xff),
		"connect_timeout as fixed32":  append(tag(4, protowire.Fixed32Type), 0, 0, 0, 0),
		"nested garbage in a message": append(tag(19, protowire.BytesType), 2, 0x0a, 0x05),
		"field number zero":           {0x00, 0x01},
		"end group without start":     tag(5, protowire.EndGroupType),
	}
	// Malformed protobuf fails as it does for go-control-plane's types (a
	// known field with another wire type is an unknown field, for both).
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			gcpErr := proto.Unmarshal(b, &clusterv3.Cluster{})
			r, err := xdsres.Decode(xdsres.ClusterType, b)
			if (r == nil) != (gcpErr != nil) {
				t.Errorf("Decode(%x) = %v, %v; go-control-plane: %v", b, r, err, gcpErr)
			}
		})
	}
	// Unknown fields, including groups, are skipped.
	unknown := append(append([]byte{}, good...), tag(999, protowire.VarintType)...)
	unknown = append(unknown, 7)
	unknown = protowire.AppendTag(unknown, 998, protowire.StartGroupType)
	unknown = protowire.AppendTag(unknown, 1, protowire.VarintType)
	unknown = append(unknown, 1)
	unknown = protowire.AppendTag(unknown, 998, protowire.EndGroupType)
	if r, err := xdsres.Decode(xdsres.ClusterType, unknown); err != nil || xdsres.Name(r) != "orders" {
		t.Errorf("Decode with unknown fields = %v, %v", r, err)
	}
	if _, err := xdsres.Decode("type.googleapis.com/nope", good); err == nil {
		t.Error("Decode of an unsupported type: nil error")
	}
}

// TestConfigDumpJSON checks the JSON form: Envoy's field names, enum
// names, protojson durations, and Anys with their @type inline.
func TestConfigDumpJSON(t *testing.T) {
	res, _ := xds.Translate(translatorInputs()["routes"], xds.CapabilitiesEnvoy)
	dump := func(typeURL string, rs []types.Resource) string {
		var out []byte
		for _, r := range rs {
			b, _ := proto.Marshal(r)
			j, err := xdsres.JSON(typeURL, b)
			if err != nil {
				t.Fatal(err)
			}
			var c bytes.Buffer
			if err := json.Compact(&c, j); err != nil {
				t.Fatal(err)
			}
			out = append(out, c.Bytes()...)
		}
		return string(out)
	}
	clusters := dump(xdsres.ClusterType, res.Clusters)
	for _, want := range []string{`"@type":"type.googleapis.com/envoy.config.cluster.v3.Cluster"`,
		`"lb_policy":"LEAST_REQUEST"`, `"lb_policy":"RING_HASH"`, `"lb_policy":"MAGLEV"`,
		`"ring_hash_lb_config":{"minimum_ring_size":"1024"`, `"connect_timeout":"2s"`,
		`"type":"EDS"`, `"name":"orders/least_request"`,
		`"typed_extension_protocol_options":{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions":{"@type":"type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions","explicit_http_config":{"http2_protocol_options":{}}}}`} {
		if !strings.Contains(clusters, want) {
			t.Errorf("cluster JSON lacks %s\n%s", want, clusters)
		}
	}
	listeners := dump(xdsres.ListenerType, res.Listeners)
	for _, want := range []string{`"typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager","stat_prefix":"outbound","rds":{"config_source":{"ads":{},"resource_api_version":"V3"},"route_config_name":"outbound"}`,
		// A filter outside the subset prints as its type alone.
		`{"name":"envoy.filters.http.router","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}`} {
		if !strings.Contains(listeners, want) {
			t.Errorf("listener JSON lacks %s\n%s", want, listeners)
		}
	}
	routes := dump(xdsres.RouteType, res.Routes)
	if !strings.Contains(routes, `"timeout":`) {
		t.Errorf("route JSON lacks a timeout\n%s", routes)
	}
}

// TestRepeatedMessageFieldMerges: a message field sent twice merges, as
// protobuf specifies (the hand decoder this replaced kept the last one):
// ring_hash_lb_config with the minimum, then again with the maximum, has
// both.
func TestRepeatedMessageFieldMerges(t *testing.T) {
	first, err := proto.Marshal(&clusterv3.Cluster{Name: "c", ConnectTimeout: durationpb.New(time.Second), LbPolicy: clusterv3.Cluster_RING_HASH,
		LbConfig: &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(8)}}})
	if err != nil {
		t.Fatal(err)
	}
	second, err := proto.Marshal(&clusterv3.Cluster{
		LbConfig: &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MaximumRingSize: wrapperspb.UInt64(64)}}})
	if err != nil {
		t.Fatal(err)
	}
	b := append(first, second...)
	m, err := xdsres.Decode(xdsres.ClusterType, b)
	if err != nil {
		t.Fatal(err)
	}
	rh := m.(*xdsclusterv3.Cluster).GetRingHashLbConfig()
	if rh.GetMinimumRingSize().GetValue() != 8 || rh.GetMaximumRingSize().GetValue() != 64 {
		t.Errorf("ring_hash_lb_config = %v, want minimum 8 and maximum 64 merged", rh)
	}
	gcp := &clusterv3.Cluster{}
	if err := proto.Unmarshal(b, gcp); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(gcp.GetRingHashLbConfig(), &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(8), MaximumRingSize: wrapperspb.UInt64(64)}) {
		t.Errorf("go-control-plane reads %v", gcp.GetRingHashLbConfig())
	}
}

// TestRouteTimeoutPresence: an absent route timeout and an explicit 0s
// are different resources (Envoy: default 15 s, and disabled).
func TestRouteTimeoutPresence(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout *durationpb.Duration
		want    bool
	}{{"absent", nil, false}, {"zero", durationpb.New(0), true}} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := proto.Marshal(&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"},
				Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}, Timeout: tc.timeout}}}}}}})
			m, err := xdsres.Decode(xdsres.RouteType, b)
			if err != nil {
				t.Fatal(err)
			}
			a := m.(*xdsroutev3.RouteConfiguration).GetVirtualHosts()[0].GetRoutes()[0].GetRoute()
			if got := a.GetTimeout() != nil; got != tc.want {
				t.Errorf("timeout present = %v, want %v", got, tc.want)
			}
		})
	}
}
