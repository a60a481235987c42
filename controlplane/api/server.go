package api

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/shoal-mesh/shoal/controlplane/policies"
	"github.com/shoal-mesh/shoal/controlplane/routes"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// MaxRecvMsgSize bounds the requests the API accepts. A route itself is
// bounded to routes.MaxRouteSize (1 MiB), reported as InvalidArgument;
// anything over this limit is refused by gRPC with ResourceExhausted.
const MaxRecvMsgSize = 4 << 20

// InstanceSource is the registry view RegistryService serves: the instances
// in etcd with the health that gossip and health checks report.
type InstanceSource interface {
	// Endpoints returns every known instance with its health, sorted by
	// service and id. It must be safe for concurrent use and must not
	// block on I/O; the result is not modified by the API.
	Endpoints() []registry.Endpoint
	// Subscribe arranges for notify to be called after the endpoints
	// change, until cancel is called. notify never blocks and may be called
	// from any goroutine; several changes may share one call.
	Subscribe(notify func()) (cancel func())
}

// StatusSource fills MeshService.Status (the xDS server provides it).
type StatusSource interface {
	// Status returns the current status. It must be safe for concurrent use
	// and not block on I/O; the API does not modify the result.
	Status() *shoalv1.StatusResponse
}

// TrafficSource fills MeshService.Traffic (the LRS server provides it).
type TrafficSource interface {
	// Traffic returns the traffic of the last window. It must be safe for
	// concurrent use and not block on I/O; the API does not modify it.
	Traffic() *shoalv1.TrafficResponse
}

// Config configures New.
type Config struct {
	// Routes is the route store. Required.
	Routes *routes.Store
	// Policies is the authorization policy store; nil leaves PolicyService
	// unregistered.
	Policies *policies.Store
	// Instances backs RegistryService; nil serves an empty registry.
	Instances InstanceSource
	// Status backs MeshService; nil serves an empty status.
	Status StatusSource
	// Traffic backs MeshService.Traffic; nil serves no traffic.
	Traffic TrafficSource
	// Drain backs DrainService; nil leaves it unregistered.
	Drain DrainSource
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Server implements the management API services. Create it with New and
// add it to a *grpc.Server with Register. It is safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger

	// ctx is the server's lifetime; Close cancels it, which ends every
	// Watch stream.
	ctx    context.Context
	cancel context.CancelFunc
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Routes == nil:
		return nil, errors.New("api: Config.Routes is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{cfg: cfg, log: cfg.Logger.With("component", "api"), ctx: ctx, cancel: cancel}, nil
}

// Register adds RouteService, RegistryService and MeshService to gs.
func (s *Server) Register(gs *grpc.Server) {
	shoalv1.RegisterRouteServiceServer(gs, &routeService{s: s})
	shoalv1.RegisterRegistryServiceServer(gs, &registryService{s: s})
	shoalv1.RegisterMeshServiceServer(gs, &meshService{s: s})
	if s.cfg.Policies != nil {
		shoalv1.RegisterPolicyServiceServer(gs, &policyService{s: s})
	}
	if s.cfg.Drain != nil {
		RegisterDrain(gs, s.cfg.Drain)
	}
}

// Local is the API's services for in-process callers (the dashboard on the
// admin port): the same code as over gRPC, without the network.
type Local struct {
	*routeService
	*registryService
	*meshService
}

// Local returns the services for in-process callers.
func (s *Server) Local() Local {
	return Local{&routeService{s: s}, &registryService{s: s}, &meshService{s: s}}
}

// Close ends every open Watch stream (with Unavailable) so that the gRPC
// server's GracefulStop can finish; unary calls are unaffected. Call it
// before GracefulStop. It is idempotent and does not wait for the streams.
func (s *Server) Close() error {
	s.cancel()
	return nil
}

// ServerOptions are the limits and keepalive policy of the management API.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxRecvMsgSize),
		grpc.MaxConcurrentStreams(1000),
		// Clients may ping every 10s, also while idle (the CLI does not;
		// long Watch streams might); faster pingers are disconnected.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// Ping idle connections so that dead Watch clients are noticed.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
	}
}

// NewGRPCServer returns a *grpc.Server with ServerOptions (then extra), the
// gRPC health service hs (a new one, all SERVING, when nil) and server
// reflection, so that `grpcurl -plaintext ADDR list` works. Add the API with
// Server.Register.
func NewGRPCServer(hs *health.Server, extra ...grpc.ServerOption) *grpc.Server {
	gs := grpc.NewServer(append(ServerOptions(), extra...)...)
	if hs == nil {
		hs = health.NewServer()
	}
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	return gs
}
