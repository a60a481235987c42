package xdsres_test

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/shoal-mesh/shoal/controlplane/xds"
	"github.com/shoal-mesh/shoal/sidecar/internal/xdsres"
)

var resourceTypes = []string{xdsres.ListenerType, xdsres.RouteType, xdsres.ClusterType, xdsres.EndpointType}

// envoyMessage returns an empty go-control-plane message of a type URL.
func envoyMessage(typeURL string) proto.Message {
	switch typeURL {
	case xdsres.ListenerType:
		return &listenerv3.Listener{}
	case xdsres.RouteType:
		return &routev3.RouteConfiguration{}
	case xdsres.ClusterType:
		return &clusterv3.Cluster{}
	}
	return &endpointv3.ClusterLoadAssignment{}
}

// FuzzDecodeAgainstGoControlPlane is a differential fuzzer: whatever
// go-control-plane's generated types read from arbitrary bytes, the
// sidecar's subset must read too, field for field on the fields it keeps
// (the subset may accept more: it skips fields it does not have).
func FuzzDecodeAgainstGoControlPlane(f *testing.F) {
	res, _ := xds.Translate(translatorInputs()["routes"], xds.CapabilitiesEnvoy)
	for i, rs := range [][]types.Resource{res.Listeners, res.Routes, res.Clusters, res.Endpoints} {
		for _, r := range rs {
			b, err := proto.Marshal(r)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(i), b)
		}
	}
	f.Add(uint8(0), []byte{0x0a, 0xff})
	f.Fuzz(func(t *testing.T, typ uint8, b []byte) {
		typeURL := resourceTypes[int(typ)%len(resourceTypes)]
		m, _ := xdsres.Decode(typeURL, b)
		gcp := envoyMessage(typeURL)
		gcpErr := proto.Unmarshal(b, gcp)
		if m == nil {
			if gcpErr == nil {
				t.Fatalf("the subset rejects what go-control-plane reads: %v", gcp)
			}
			return
		}
		// JSON may fail (protojson refuses an Any with a value and no
		// type URL; /config_dump then prints the error), never panic.
		_, _ = xdsres.JSON(typeURL, b)
		if gcpErr != nil {
			return
		}
		restrict(gcp.ProtoReflect(), m.ProtoReflect().Descriptor())
		b2, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		back := envoyMessage(typeURL)
		if err := proto.Unmarshal(b2, back); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(gcp, back, protocmp.Transform()); diff != "" {
			t.Fatalf("subset differs from go-control-plane (-want +got):\n%s", diff)
		}
	})
}
