package xdsclient

import (
	"fmt"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/shoal-mesh/shoal/controlplane/xds"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
	xdsdiscoveryv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/service/discovery/v3"
)

// benchResponses is the control plane's translation of one service with n
// endpoints and a route per strategy, as one encoded delta response per
// type (what the sidecar receives at its initial sync).
func benchResponses(b *testing.B, n int) [][]byte {
	b.Helper()
	var eps []registry.Endpoint
	for i := range n {
		eps = append(eps, registry.Endpoint{Health: registry.HealthHealthy, Instance: &registry.Instance{
			ID: fmt.Sprintf("orders-%d", i), Service: "orders", Address: fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255),
			Port: 3001, Protocol: registry.ProtocolHTTP, Zone: "a", Weight: 1}})
	}
	var routes []*shoalv1.Route
	for i, s := range []shoalv1.Strategy{shoalv1.Strategy_STRATEGY_LEAST_REQUEST, shoalv1.Strategy_STRATEGY_IP_HASH, shoalv1.Strategy_STRATEGY_MAGLEV} {
		routes = append(routes, &shoalv1.Route{Name: fmt.Sprintf("r%d", i), Hosts: []string{fmt.Sprintf("r%d.example.com", i)},
			Rules: []*shoalv1.Rule{{Strategy: s, Destinations: []*shoalv1.Destination{{Service: "orders"}}}}})
	}
	res, _ := xds.Translate(xds.Input{Endpoints: eps, Routes: routes}, xds.CapabilitiesEnvoy)
	var out [][]byte
	for i, rs := range [][]types.Resource{res.Listeners, res.Routes, res.Clusters, res.Endpoints} {
		m := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: []string{ListenerType, RouteType, ClusterType, EndpointType}[i], SystemVersionInfo: "1", Nonce: "n"}
		for _, r := range rs {
			a, err := anypb.New(r)
			if err != nil {
				b.Fatal(err)
			}
			m.Resources = append(m.Resources, &discoveryv3.Resource{Name: cachev3.GetResourceName(r), Version: "1", Resource: a})
		}
		bs, err := proto.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, bs)
	}
	return out
}

// BenchmarkDecodeConfig decodes and validates a whole configuration with
// 1,000 endpoints as the receive goroutine does: bytes to an update.
func BenchmarkDecodeConfig(b *testing.B) {
	resps := benchResponses(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range resps {
			if _, err := decodeDeltaBytes(r); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func decodeDeltaBytes(b []byte) (*update, error) {
	var m xdsdiscoveryv3.DeltaDiscoveryResponse
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return decodeDelta(&m)
}
