package controlplane

import (
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-mesh/shoal/controlplane/lrs"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// trafficSource fills MeshService.Traffic from the LRS reports, naming each
// endpoint's instance from the registry.
type trafficSource struct {
	lrs       *lrs.Server
	instances func() []registry.Endpoint
}

func (ts trafficSource) Traffic() *shoalv1.TrafficResponse {
	snap := ts.lrs.Snapshot()
	ids := map[string]string{} // host:port -> instance id
	for _, ep := range ts.instances() {
		ids[ep.HostPort()] = ep.ID
	}
	resp := &shoalv1.TrafficResponse{Window: durationpb.New(snap.Window)}
	for _, e := range snap.Edges {
		rate := 1.0
		if e.Requests > 0 {
			rate = float64(e.Requests-e.Errors) / float64(e.Requests)
		}
		resp.Edges = append(resp.Edges, &shoalv1.Edge{
			Source: e.Source, Destination: e.Destination, Requests: e.Requests, Errors: e.Errors,
			RequestsPerSecond: e.RPS, SuccessRate: rate, MeanLatencyMs: e.MeanLatencyMS, InProgress: e.InProgress,
		})
	}
	// Shares are per source and cluster: how one proxy's strategy spread
	// its requests.
	totals := map[[2]string]uint64{}
	for _, ep := range snap.Endpoints {
		totals[[2]string{ep.Source, ep.Cluster}] += ep.Requests
	}
	for _, ep := range snap.Endpoints {
		service, strategy := lrs.SplitCluster(ep.Cluster)
		var share float64
		if t := totals[[2]string{ep.Source, ep.Cluster}]; t > 0 {
			share = float64(ep.Requests) / float64(t)
		}
		resp.Endpoints = append(resp.Endpoints, &shoalv1.EndpointTraffic{
			Source: ep.Source, Service: service, Cluster: ep.Cluster, Strategy: strategy,
			Address: ep.Address, InstanceId: ids[ep.Address], Requests: ep.Requests, Errors: ep.Errors,
			RequestsPerSecond: ep.RPS, Share: share, InProgress: ep.InProgress,
		})
	}
	return resp
}
