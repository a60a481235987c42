//go:build !shoal_slim

package main

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

func TestPrintTopShowsSharesPerStrategyAndEdges(t *testing.T) {
	tr := &shoalv1.TrafficResponse{
		Window: durationpb.New(time.Minute),
		Edges: []*shoalv1.Edge{{Source: "gateway", Destination: "web", Requests: 600, Errors: 6,
			RequestsPerSecond: 10, SuccessRate: 0.99, MeanLatencyMs: 2.5, InProgress: 3}},
		Endpoints: []*shoalv1.EndpointTraffic{
			{Source: "gateway", Service: "web", Strategy: "least_request", Address: "127.0.0.1:3001", Requests: 300},
			{Source: "gateway", Service: "web", Strategy: "least_request", Address: "127.0.0.1:3002", Requests: 100},
			{Source: "gateway", Service: "web", Strategy: "round_robin", Address: "127.0.0.1:3001", Requests: 100},
			{Source: "gateway", Service: "web", Strategy: "round_robin", Address: "127.0.0.1:3002", Requests: 100},
		},
	}
	svcs := []*shoalv1.Service{{Name: "web", Instances: 2, HealthyInstances: 1}}
	insts := []*shoalv1.Instance{
		{Id: "web-1", Service: "web", Address: "127.0.0.1", Port: 3001, Health: shoalv1.HealthStatus_HEALTH_STATUS_HEALTHY},
		{Id: "web-2", Service: "web", Address: "127.0.0.1", Port: 3002, Health: shoalv1.HealthStatus_HEALTH_STATUS_SUSPECT},
	}
	var b strings.Builder
	printTop(&b, tr, svcs, insts, time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC))
	out := b.String()
	for _, want := range []string{
		"traffic over the last 1m0s",
		"WEB (1/2 healthy)",
		"LEAST_REQUEST", "ROUND_ROBIN",
		"web-1", "healthy", "[########..]  75.0% 300", "[#####.....]  50.0% 100",
		"web-2", "suspect", "[###.......]  25.0% 100",
		"gateway", "10.0", "99.00%", "2.5ms",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
