package xdstable

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	clusterv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/cluster/v3"
	corev3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/core/v3"
	typev3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/type/v3"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// Envoy's slow_start_config of round robin and least request clusters
// becomes the cluster's route.SlowStart; other policies have none.
func TestSlowStartConfig(t *testing.T) {
	sc := &clusterv3.Cluster_SlowStartConfig{
		SlowStartWindow:  durationpb.New(30 * time.Second),
		Aggression:       &corev3.RuntimeDouble{DefaultValue: 2, RuntimeKey: "a"},
		MinWeightPercent: &typev3.Percent{Value: 20},
	}
	want := route.SlowStart{Window: 30 * time.Second, Aggression: 2, MinWeightPercent: 20}
	rr := &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_ROUND_ROBIN, LbConfig: &clusterv3.Cluster_RoundRobinLbConfig_{
		RoundRobinLbConfig: &clusterv3.Cluster_RoundRobinLbConfig{SlowStartConfig: sc}}}
	lr := &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_LEAST_REQUEST, LbConfig: &clusterv3.Cluster_LeastRequestLbConfig_{
		LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{SlowStartConfig: sc}}}
	for name, c := range map[string]*clusterv3.Cluster{"round robin": rr, "least request": lr} {
		if got := slowStart(c); got != want {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
	}
	if got := slowStart(&clusterv3.Cluster{LbPolicy: clusterv3.Cluster_RING_HASH}); got != (route.SlowStart{}) {
		t.Errorf("ring hash: %+v, want none", got)
	}
}
