package api

import (
	"context"
	"errors"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/controlplane/routes"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry/kvwatch"
)

// watchQueue bounds the batches a Watch stream may fall behind by. A client
// that falls further behind is disconnected with ResourceExhausted (it must
// watch again); dropping a batch silently would leave it with a wrong view.
const watchQueue = 64

// routeService implements shoalv1.RouteServiceServer over routes.Store.
type routeService struct {
	shoalv1.UnimplementedRouteServiceServer
	s *Server
}

var _ shoalv1.RouteServiceServer = (*routeService)(nil)

func (rs *routeService) CreateRoute(ctx context.Context, req *shoalv1.CreateRouteRequest) (*shoalv1.CreateRouteResponse, error) {
	r, err := rs.s.cfg.Routes.Create(ctx, req.GetRoute())
	if err != nil {
		return nil, rs.s.toStatus(err)
	}
	return &shoalv1.CreateRouteResponse{Route: r}, nil
}

func (rs *routeService) GetRoute(ctx context.Context, req *shoalv1.GetRouteRequest) (*shoalv1.GetRouteResponse, error) {
	r, err := rs.s.cfg.Routes.Get(ctx, req.GetName())
	if err != nil {
		return nil, rs.routeStatus(req.GetName(), err)
	}
	return &shoalv1.GetRouteResponse{Route: r}, nil
}

// routeStatus is toStatus naming the route when there is none by that
// name: NotFound `route "x" not found`.
func (rs *routeService) routeStatus(name string, err error) error {
	if errors.Is(err, routes.ErrNotFound) {
		return status.Errorf(codes.NotFound, "route %q not found", name)
	}
	return rs.s.toStatus(err)
}

func (rs *routeService) ListRoutes(ctx context.Context, _ *shoalv1.ListRoutesRequest) (*shoalv1.ListRoutesResponse, error) {
	all, _, err := rs.s.cfg.Routes.List(ctx)
	if err != nil {
		return nil, rs.s.toStatus(err)
	}
	return &shoalv1.ListRoutesResponse{Routes: all}, nil
}

func (rs *routeService) UpdateRoute(ctx context.Context, req *shoalv1.UpdateRouteRequest) (*shoalv1.UpdateRouteResponse, error) {
	r, err := rs.s.cfg.Routes.Update(ctx, req.GetRoute())
	if err != nil {
		return nil, rs.routeStatus(req.GetRoute().GetName(), err)
	}
	return &shoalv1.UpdateRouteResponse{Route: r}, nil
}

func (rs *routeService) DeleteRoute(ctx context.Context, req *shoalv1.DeleteRouteRequest) (*shoalv1.DeleteRouteResponse, error) {
	if err := rs.s.cfg.Routes.Delete(ctx, req.GetName(), req.GetVersion()); err != nil {
		return nil, rs.routeStatus(req.GetName(), err)
	}
	return &shoalv1.DeleteRouteResponse{}, nil
}

// WatchRoutes runs a route watch of its own for the stream: the watch's
// callback enqueues (never blocks) and this goroutine sends. The stream
// carries the routes the control plane serves: a stored value it refuses
// (written around the API, see routes.Store.Watch) sends no event, so the
// watcher keeps the route's last good version as the mesh does, and a
// route never valid does not appear. Refusals are reported by
// MeshService.Status, not on this stream.
func (rs *routeService) WatchRoutes(_ *shoalv1.WatchRoutesRequest, stream grpc.ServerStreamingServer[shoalv1.WatchRoutesResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	stop := context.AfterFunc(rs.s.ctx, cancel)
	defer stop()

	// queue carries responses from the watch callback to this goroutine.
	queue := make(chan *shoalv1.WatchRoutesResponse, watchQueue)
	// overflowed is set by the callback when queue was full; from then on
	// it drops everything and the stream ends.
	var overflowed atomic.Bool
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- rs.s.cfg.Routes.Watch(ctx, func(b routes.Batch) {
			if overflowed.Load() || (len(b.Events) == 0 && !b.Initial) {
				return // nothing for the stream: only Rejected changed
			}
			select {
			case queue <- watchResponse(b):
			default:
				overflowed.Store(true)
				cancel()
			}
		})
	}()
	defer func() { cancel(); <-watchDone }()
	for {
		select {
		case resp := <-queue:
			if overflowed.Load() {
				return status.Error(codes.ResourceExhausted, "api: route watch fell too far behind; watch again")
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
		case <-ctx.Done():
			return rs.s.streamEnd(stream.Context(), overflowed.Load())
		}
	}
}

// streamEnd is the status a Watch stream ends with once its context is done.
func (s *Server) streamEnd(streamCtx context.Context, overflowed bool) error {
	switch {
	case overflowed:
		return status.Error(codes.ResourceExhausted, "api: watch fell too far behind; watch again")
	case streamCtx.Err() != nil:
		return s.toStatus(streamCtx.Err())
	}
	return status.Error(codes.Unavailable, "api: server shutting down")
}

func watchResponse(b routes.Batch) *shoalv1.WatchRoutesResponse {
	resp := &shoalv1.WatchRoutesResponse{Initial: b.Initial, Events: make([]*shoalv1.RouteEvent, 0, len(b.Events))}
	for _, ev := range b.Events {
		e := &shoalv1.RouteEvent{Type: shoalv1.RouteEvent_TYPE_PUT, Route: ev.Route}
		if ev.Type == kvwatch.Delete {
			e.Type, e.Route = shoalv1.RouteEvent_TYPE_DELETE, &shoalv1.Route{Name: ev.Name}
		}
		resp.Events = append(resp.Events, e)
	}
	return resp
}
