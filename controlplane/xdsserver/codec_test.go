package xdsserver

import (
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/google/go-cmp/cmp"
)

func TestCodecRoundTrip(t *testing.T) {
	in := &discoveryv3.DiscoveryResponse{VersionInfo: "v1", TypeUrl: resource.ClusterType, Nonce: "3",
		Resources: []*anypb.Any{{TypeUrl: resource.ClusterType, Value: make([]byte, 64<<10)}}}
	data, err := codec{}.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := data.Materialize(); string(got) != string(want) {
		t.Fatalf("Marshal wrote %d bytes, want proto.Marshal's %d", len(got), len(want))
	}
	out := &discoveryv3.DiscoveryResponse{}
	if err := (codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(want)}, out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out, protocmp.Transform()); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if _, err := (codec{}).Marshal("not a message"); err == nil {
		t.Error("Marshal of a string succeeded")
	}
}
