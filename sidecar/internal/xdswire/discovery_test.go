package xdswire_test

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/shoal-mesh/shoal/sidecar/internal/xdswire"
)

var node = &xdswire.Node{
	ID: "orders-1", Cluster: "orders",
	Metadata:         map[string]string{"service": "orders", "instance_id": "orders-1"},
	Locality:         &xdswire.Locality{Zone: "local"},
	UserAgentName:    "shoal-sidecar",
	UserAgentVersion: "v1.2.3",
}

// envoyNode is node as the sidecar built it with go-control-plane's types
// before the wire codec: the control plane must see the same identity.
func envoyNode(t *testing.T) *corev3.Node {
	md, err := structpb.NewStruct(map[string]any{"service": "orders", "instance_id": "orders-1"})
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.Node{
		Id: "orders-1", Cluster: "orders", Metadata: md,
		Locality:             &corev3.Locality{Zone: "local"},
		UserAgentName:        "shoal-sidecar",
		UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: "v1.2.3"},
	}
}

func checkRequest(t *testing.T, b []byte, got, want proto.Message) {
	t.Helper()
	if err := proto.Unmarshal(b, got); err != nil {
		t.Fatalf("generated code cannot decode the request: %v", err)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("request mismatch (-want +got):\n%s", diff)
	}
}

func TestDiscoveryRequestRoundTrip(t *testing.T) {
	cases := []struct {
		req  *xdswire.DiscoveryRequest
		want *discoveryv3.DiscoveryRequest
	}{
		{&xdswire.DiscoveryRequest{Node: node, TypeURL: xdswire.ListenerType},
			&discoveryv3.DiscoveryRequest{Node: envoyNode(t), TypeUrl: xdswire.ListenerType}},
		{&xdswire.DiscoveryRequest{VersionInfo: "v1", ResourceNames: []string{"a", "b"}, TypeURL: xdswire.RouteType, ResponseNonce: "n1"},
			&discoveryv3.DiscoveryRequest{VersionInfo: "v1", ResourceNames: []string{"a", "b"}, TypeUrl: xdswire.RouteType, ResponseNonce: "n1"}},
		{&xdswire.DiscoveryRequest{TypeURL: xdswire.ClusterType, ResponseNonce: "n2", ErrorDetail: &xdswire.Status{Code: 3, Message: "bad"}},
			&discoveryv3.DiscoveryRequest{TypeUrl: xdswire.ClusterType, ResponseNonce: "n2", ErrorDetail: &status.Status{Code: 3, Message: "bad"}}},
	}
	for _, tc := range cases {
		checkRequest(t, tc.req.Marshal(), &discoveryv3.DiscoveryRequest{}, tc.want)
	}
}

func TestDeltaDiscoveryRequestRoundTrip(t *testing.T) {
	cases := []struct {
		req  *xdswire.DeltaDiscoveryRequest
		want *discoveryv3.DeltaDiscoveryRequest
	}{
		{&xdswire.DeltaDiscoveryRequest{Node: node, TypeURL: xdswire.EndpointType, ResourceNamesSubscribe: []string{"a", "b"},
			InitialResourceVersions: map[string]string{"b": "2", "a": "1", "c": ""}},
			&discoveryv3.DeltaDiscoveryRequest{Node: envoyNode(t), TypeUrl: xdswire.EndpointType, ResourceNamesSubscribe: []string{"a", "b"},
				InitialResourceVersions: map[string]string{"a": "1", "b": "2", "c": ""}}},
		{&xdswire.DeltaDiscoveryRequest{TypeURL: xdswire.RouteType, ResourceNamesUnsubscribe: []string{"x"}},
			&discoveryv3.DeltaDiscoveryRequest{TypeUrl: xdswire.RouteType, ResourceNamesUnsubscribe: []string{"x"}}},
		{&xdswire.DeltaDiscoveryRequest{TypeURL: xdswire.ClusterType, ResponseNonce: "7", ErrorDetail: &xdswire.Status{Code: 3, Message: "no"}},
			&discoveryv3.DeltaDiscoveryRequest{TypeUrl: xdswire.ClusterType, ResponseNonce: "7", ErrorDetail: &status.Status{Code: 3, Message: "no"}}},
	}
	for _, tc := range cases {
		checkRequest(t, tc.req.Marshal(), &discoveryv3.DeltaDiscoveryRequest{}, tc.want)
	}
}

func TestNodeClone(t *testing.T) {
	c := node.Clone()
	c.Metadata["service"] = "changed"
	c.Locality.Zone = "changed"
	if node.Metadata["service"] != "orders" || node.Locality.Zone != "local" {
		t.Error("Clone shares maps or pointers with the original")
	}
	if (*xdswire.Node)(nil).Clone() != nil {
		t.Error("nil.Clone() != nil")
	}
}

func clusterAny(t *testing.T, name string) *anypb.Any {
	return anyOf(t, &clusterv3.Cluster{Name: name, ConnectTimeout: durationpb.New(time.Second)})
}

func TestDiscoveryResponseDecode(t *testing.T) {
	m := &discoveryv3.DiscoveryResponse{
		VersionInfo: "v3", TypeUrl: xdswire.ClusterType, Nonce: "n",
		Resources: []*anypb.Any{clusterAny(t, "a"), clusterAny(t, "b")},
		Canary:    true, // not decoded
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var got xdswire.DiscoveryResponse
	if err := got.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	want := xdswire.DiscoveryResponse{VersionInfo: "v3", TypeURL: xdswire.ClusterType, Nonce: "n"}
	for _, a := range m.Resources {
		want.Resources = append(want.Resources, xdswire.Any{TypeURL: a.TypeUrl, Value: a.Value})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	if err := got.Unmarshal(b[:len(b)-2]); err == nil {
		t.Error("truncated response: nil error")
	}
}

func TestDeltaDiscoveryResponseRoundTrip(t *testing.T) {
	m := &discoveryv3.DeltaDiscoveryResponse{
		SystemVersionInfo: "sv", TypeUrl: xdswire.ClusterType, Nonce: "n",
		Resources: []*discoveryv3.Resource{
			{Name: "a", Version: "1", Resource: clusterAny(t, "a")},
			{Name: "alias-only", Aliases: []string{"x"}},
		},
		RemovedResources: []string{"gone", "gone-too"},
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var got xdswire.DeltaDiscoveryResponse
	if err := got.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	want := xdswire.DeltaDiscoveryResponse{
		SystemVersionInfo: "sv", TypeURL: xdswire.ClusterType, Nonce: "n",
		Resources: []xdswire.DeltaResource{
			{Name: "a", Version: "1", Resource: &xdswire.Any{TypeURL: xdswire.ClusterType, Value: m.Resources[0].Resource.Value}},
			{Name: "alias-only"},
		},
		RemovedResources: []string{"gone", "gone-too"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decode mismatch (-want +got):\n%s", diff)
	}
	// Marshal is what the state file holds: the generated code must read
	// it back as the same response (less the alias, which is not kept).
	back := &discoveryv3.DeltaDiscoveryResponse{}
	if err := proto.Unmarshal(got.Marshal(), back); err != nil {
		t.Fatal(err)
	}
	m.Resources[1].Aliases = nil
	if diff := cmp.Diff(m, back, protocmp.Transform()); diff != "" {
		t.Errorf("re-encoded response mismatch (-want +got):\n%s", diff)
	}
}
