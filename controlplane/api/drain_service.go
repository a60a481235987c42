package api

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	drainv1 "github.com/shoal-mesh/shoal/proto/shoal/drain/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// DrainSource answers DrainService.WaitRemoved (the xDS server provides it).
type DrainSource interface {
	// WaitRemoved blocks until no xDS client holds address:port of service
	// in what it ACKed, or timeout, or ctx ends; it reports whether that
	// happened, how long it waited, who was still pending and how many
	// clients had the service. Safe for concurrent use.
	WaitRemoved(ctx context.Context, service, address string, port uint32, timeout time.Duration) (converged bool, waited time.Duration, pending []string, clients int)
}

// drainService implements drainv1.DrainServiceServer.
type drainService struct {
	drainv1.UnimplementedDrainServiceServer
	src DrainSource
}

var _ drainv1.DrainServiceServer = (*drainService)(nil)

// RegisterDrain adds DrainService to gs, served by src: the control plane
// registers it on its xDS port, where sidecars reach it, as well as with
// the management API.
func RegisterDrain(gs *grpc.Server, src DrainSource) {
	drainv1.RegisterDrainServiceServer(gs, &drainService{src: src})
}

func (ds *drainService) WaitRemoved(ctx context.Context, req *drainv1.WaitRemovedRequest) (*drainv1.WaitRemovedResponse, error) {
	switch {
	case !registry.ValidName(req.GetService()):
		return nil, status.Error(codes.InvalidArgument, fmt.Sprintf("api: service: %q is not a lowercase DNS label of at most 63 characters", req.GetService()))
	case net.ParseIP(req.GetAddress()) == nil && !validHost(req.GetAddress()):
		return nil, status.Error(codes.InvalidArgument, fmt.Sprintf("api: address: %q is not an IP address or host name", req.GetAddress()))
	case req.GetPort() < 1 || req.GetPort() > 65535:
		return nil, status.Error(codes.InvalidArgument, fmt.Sprintf("api: port: %d is outside 1-65535", req.GetPort()))
	case req.GetTimeout() != nil && (req.GetTimeout().CheckValid() != nil || req.GetTimeout().AsDuration() < 0):
		return nil, status.Error(codes.InvalidArgument, fmt.Sprintf("api: timeout: %v is not a non-negative duration", req.GetTimeout()))
	}
	converged, waited, pending, clients := ds.src.WaitRemoved(ctx, req.GetService(), req.GetAddress(), req.GetPort(), req.GetTimeout().AsDuration())
	return &drainv1.WaitRemovedResponse{
		Converged: converged, Waited: durationpb.New(waited), Pending: pending, Clients: uint32(clients),
	}, nil
}

func validHost(h string) bool {
	return h != "" && len(h) <= 253 && registry.ValidName(firstLabel(h))
}

func firstLabel(h string) string {
	for i := range len(h) {
		if h[i] == '.' {
			return h[:i]
		}
	}
	return h
}
