package xds

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// A route written around the API (straight into etcd) with settings the
// validator refuses is left out and named in its status; it never reaches
// a client as a resource it would NACK (issue 17).
func TestTranslateRejectsBadTuning(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*shoalv1.Rule)
		wantErr string
	}{
		{"slow start without a window", func(r *shoalv1.Rule) { r.SlowStart = &shoalv1.SlowStart{} }, "slow_start: window"},
		{"slow start aggression 0", func(r *shoalv1.Rule) {
			r.SlowStart = &shoalv1.SlowStart{Window: dur(time.Second), Aggression: proto.Float64(0)}
		}, "slow_start: aggression"},
		{"min weight over 100", func(r *shoalv1.Rule) {
			r.SlowStart = &shoalv1.SlowStart{Window: dur(time.Second), MinWeightPercent: proto.Float64(100.5)}
		}, "slow_start: min_weight_percent"},
		{"per-endpoint over cluster limit", func(r *shoalv1.Rule) {
			r.CircuitBreakers = &shoalv1.CircuitBreakers{MaxRequests: 1, MaxRequestsPerEndpoint: 2}
		}, "circuit_breakers: max_requests_per_endpoint"},
		{"stall max below min", func(r *shoalv1.Rule) {
			r.StallDetection = &shoalv1.StallDetection{MinThreshold: dur(2 * time.Second), MaxThreshold: dur(time.Second)}
		}, "stall_detection: max_threshold"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rule(shoalv1.Strategy_STRATEGY_ROUND_ROBIN, to("orders"))
			tc.change(r)
			res, statuses := Translate(Input{Endpoints: ordersFleet(), Routes: []*shoalv1.Route{route("bad", []string{"orders"}, r)}}, CapabilitiesEnvoy)
			if len(statuses) != 1 || statuses[0].GetAccepted() || !strings.Contains(statuses[0].GetError(), tc.wantErr) {
				t.Fatalf("statuses = %v, want one rejected naming %q", statuses, tc.wantErr)
			}
			if err := res.Check(); err != nil {
				t.Fatalf("Check() = %v", err)
			}
			for _, c := range res.Clusters {
				if n := c.(*clusterv3.Cluster).GetName(); strings.Contains(n, "cfg-") {
					t.Errorf("cluster %q emitted for a rejected route", n)
				}
			}
		})
	}
}
