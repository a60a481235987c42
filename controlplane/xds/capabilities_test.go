package xds

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

func TestCapabilitiesFor(t *testing.T) {
	tests := []struct {
		name string
		node *corev3.Node
		want string
	}{
		{name: "envoy takes everything", node: &corev3.Node{UserAgentName: "envoy"}, want: "envoy"},
		{name: "the shoal sidecar takes everything", node: &corev3.Node{UserAgentName: "shoal-sidecar"}, want: "envoy"},
		{name: "grpc-go takes least request", node: &corev3.Node{UserAgentName: "gRPC Go"}, want: "grpc-go"},
		{name: "grpc-js gets the minimal set", node: &corev3.Node{UserAgentName: "gRPC Node Pure JS"}, want: "minimal"},
		{name: "an unknown client gets the minimal set", node: &corev3.Node{UserAgentName: "curl"}, want: "minimal"},
		{name: "a nil node gets the minimal set", want: "minimal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := CapabilitiesFor(tc.node).Profile; got != tc.want {
				t.Errorf("CapabilitiesFor(%v).Profile = %q, want %q", tc.node, got, tc.want)
			}
		})
	}
}

func TestStrategyPerProfile(t *testing.T) {
	tests := []struct {
		strategy shoalv1.Strategy
		want     map[string]lbKind
	}{
		{shoalv1.Strategy_STRATEGY_UNSPECIFIED, map[string]lbKind{"envoy": lbRoundRobin, "grpc-go": lbRoundRobin, "minimal": lbRoundRobin}},
		{shoalv1.Strategy_STRATEGY_LEAST_REQUEST, map[string]lbKind{"envoy": lbLeastRequest, "grpc-go": lbLeastRequest, "minimal": lbRoundRobin}},
		{shoalv1.Strategy_STRATEGY_IP_HASH, map[string]lbKind{"envoy": lbRingHash, "grpc-go": lbRingHash, "minimal": lbRingHash}},
		{shoalv1.Strategy_STRATEGY_MAGLEV, map[string]lbKind{"envoy": lbMaglev, "grpc-go": lbRingHash, "minimal": lbRingHash}},
		{shoalv1.Strategy_STRATEGY_RANDOM, map[string]lbKind{"envoy": lbRandom, "grpc-go": lbRoundRobin, "minimal": lbRoundRobin}},
		// grpc-js has neither A58 nor A48: least loaded falls back as least
		// request does, so it never sees a policy it would NACK.
		{shoalv1.Strategy_STRATEGY_LEAST_LOADED, map[string]lbKind{"envoy": lbLeastLoaded, "grpc-go": lbLeastLoaded, "minimal": lbRoundRobin}},
	}
	for _, tc := range tests {
		for _, caps := range allProfiles {
			t.Run(tc.strategy.String()+"/"+caps.Profile, func(t *testing.T) {
				if got := caps.lbKind(tc.strategy); got != tc.want[caps.Profile] {
					t.Errorf("lbKind = %v, want %v", got, tc.want[caps.Profile])
				}
			})
		}
	}
}
