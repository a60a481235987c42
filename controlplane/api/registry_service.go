package api

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// registryService implements shoalv1.RegistryServiceServer over an
// InstanceSource.
type registryService struct {
	shoalv1.UnimplementedRegistryServiceServer
	s *Server
}

var _ shoalv1.RegistryServiceServer = (*registryService)(nil)

func (rs *registryService) ListServices(context.Context, *shoalv1.ListServicesRequest) (*shoalv1.ListServicesResponse, error) {
	resp := &shoalv1.ListServicesResponse{}
	for _, ep := range rs.endpoints("") {
		n := len(resp.Services)
		if n == 0 || resp.Services[n-1].Name != ep.Service {
			resp.Services = append(resp.Services, &shoalv1.Service{Name: ep.Service})
			n++
		}
		svc := resp.Services[n-1]
		svc.Instances++
		if ep.Health.Routable() {
			svc.HealthyInstances++
		}
	}
	return resp, nil
}

func (rs *registryService) ListInstances(_ context.Context, req *shoalv1.ListInstancesRequest) (*shoalv1.ListInstancesResponse, error) {
	if err := checkService(req.GetService()); err != nil {
		return nil, err
	}
	resp := &shoalv1.ListInstancesResponse{}
	for _, ep := range rs.endpoints(req.GetService()) {
		resp.Instances = append(resp.Instances, instanceProto(ep))
	}
	return resp, nil
}

// WatchInstances sends every instance, then the differences each time the
// source reports a change. Notifications coalesce in a one-slot channel, so
// a slow client sees fewer, larger batches and never a stale view.
func (rs *registryService) WatchInstances(req *shoalv1.WatchInstancesRequest, stream grpc.ServerStreamingServer[shoalv1.WatchInstancesResponse]) error {
	if err := checkService(req.GetService()); err != nil {
		return err
	}
	// changed is signalled by the source's notify; one slot coalesces.
	changed := make(chan struct{}, 1)
	if src := rs.s.cfg.Instances; src != nil {
		unsubscribe := src.Subscribe(func() {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
		defer unsubscribe()
	}
	sent := map[string]*shoalv1.Instance{}
	for initial := true; ; initial = false {
		cur := map[string]*shoalv1.Instance{}
		for _, ep := range rs.endpoints(req.GetService()) {
			cur[ep.Service+"/"+ep.ID] = instanceProto(ep)
		}
		resp := instanceDiff(sent, cur)
		resp.Initial = initial
		if initial || len(resp.Events) > 0 {
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
		sent = cur
		select {
		case <-changed:
		case <-stream.Context().Done():
			return rs.s.streamEnd(stream.Context(), false)
		case <-rs.s.ctx.Done():
			return rs.s.streamEnd(stream.Context(), false)
		}
	}
}

// endpoints returns the source's endpoints of service (all when empty).
func (rs *registryService) endpoints(service string) []registry.Endpoint {
	src := rs.s.cfg.Instances
	if src == nil {
		return nil
	}
	var out []registry.Endpoint
	for _, ep := range src.Endpoints() {
		if ep.Instance != nil && (service == "" || ep.Service == service) {
			out = append(out, ep)
		}
	}
	return out
}

func checkService(service string) error {
	if service != "" && !registry.ValidName(service) {
		return status.Error(codes.InvalidArgument, fmt.Sprintf("api: service: %q is not a lowercase DNS label of at most 63 characters", service))
	}
	return nil
}

// instanceDiff returns the events that turn sent into cur, ordered by key.
func instanceDiff(sent, cur map[string]*shoalv1.Instance) *shoalv1.WatchInstancesResponse {
	resp := &shoalv1.WatchInstancesResponse{}
	for _, k := range slices.Sorted(maps.Keys(cur)) {
		if old, ok := sent[k]; !ok || !proto.Equal(old, cur[k]) {
			resp.Events = append(resp.Events, &shoalv1.InstanceEvent{Type: shoalv1.InstanceEvent_TYPE_PUT, Instance: cur[k]})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(sent)) {
		if _, ok := cur[k]; !ok {
			old := sent[k]
			resp.Events = append(resp.Events, &shoalv1.InstanceEvent{
				Type:     shoalv1.InstanceEvent_TYPE_DELETE,
				Instance: &shoalv1.Instance{Service: old.GetService(), Id: old.GetId()},
			})
		}
	}
	return resp
}

func instanceProto(ep registry.Endpoint) *shoalv1.Instance {
	return &shoalv1.Instance{
		Id:       ep.ID,
		Service:  ep.Service,
		Address:  ep.Address,
		Port:     uint32(ep.Port),
		Protocol: string(ep.Protocol),
		Zone:     ep.Zone,
		Weight:   uint32(ep.Weight),
		Metadata: maps.Clone(ep.Metadata),
		Health:   healthProto(ep.Health),
	}
}

// healthProto maps registry health to the API's. The API has no "dead":
// a dead host's instances are reported UNHEALTHY (not routable).
func healthProto(h registry.Health) shoalv1.HealthStatus {
	switch h {
	case registry.HealthHealthy:
		return shoalv1.HealthStatus_HEALTH_STATUS_HEALTHY
	case registry.HealthUnhealthy, registry.HealthDead:
		return shoalv1.HealthStatus_HEALTH_STATUS_UNHEALTHY
	case registry.HealthSuspect:
		return shoalv1.HealthStatus_HEALTH_STATUS_SUSPECT
	case registry.HealthDraining:
		return shoalv1.HealthStatus_HEALTH_STATUS_DRAINING
	}
	return shoalv1.HealthStatus_HEALTH_STATUS_UNSPECIFIED
}
