package xdswire_test

import (
	"encoding/json"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-mesh/shoal/controlplane/xds"
	"github.com/shoal-mesh/shoal/sidecar/internal/xdswire"
)

var resourceTypes = []string{xdswire.ListenerType, xdswire.RouteType, xdswire.ClusterType, xdswire.EndpointType}

// FuzzDecode feeds arbitrary bytes to every decoder: they must return an
// error or a resource, never panic, and a decoded resource must print as
// JSON (/config_dump) and pass Validate without panicking either.
func FuzzDecode(f *testing.F) {
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
		var dr xdswire.DiscoveryResponse
		_ = dr.Unmarshal(b)
		var ddr xdswire.DeltaDiscoveryResponse
		if ddr.Unmarshal(b) == nil {
			_ = ddr.Marshal()
		}
		typeURL := resourceTypes[int(typ)%len(resourceTypes)]
		r, err := xdswire.Decode(typeURL, b)
		if r == nil {
			if err == nil {
				t.Fatal("nil resource without an error")
			}
			return
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatalf("JSON of a decoded resource: %v", err)
		}
	})
}
