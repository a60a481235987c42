package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/shoal-mesh/shoal/proto/shoal/registry/v1"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/registry/etcdstore"
)

// roleOpen is the caller on a port that does not authenticate (loopback):
// like anyone who can reach the plain etcd beside it, it may register any
// service.
const roleOpen = "unauthenticated"

// Registrar writes instances under leases (etcdstore.Registrar).
type Registrar interface {
	Register(ctx context.Context, in registry.Instance, ttl time.Duration) (lease int64, granted time.Duration, err error)
	KeepAlive(ctx context.Context, lease int64, service, id string) (time.Duration, error)
	Deregister(ctx context.Context, lease int64, service, id string) error
}

var _ Registrar = (*etcdstore.Registrar)(nil)

// RegistrationConfig configures NewRegistration.
type RegistrationConfig struct {
	// Registrar writes to etcd. Required.
	Registrar Registrar
	// TrustDomain of the callers' SVIDs. Required.
	TrustDomain spiffeid.TrustDomain
	// RequireIdentity refuses callers without a client SVID (or, on the
	// management API, a token): set when the port authenticates. Without
	// it an unauthenticated caller may register any service, as it could
	// through the plain etcd of such a mesh.
	RequireIdentity bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Registration implements shoal.registry.v1.RegistryService: a caller
// writes only instances of its own service (its SVID's, or a join
// token's); the admin writes any; every refusal happens before etcd is
// touched. Add it to a server with registryv1.RegisterRegistryServiceServer.
// Safe for concurrent use.
type Registration struct {
	registryv1.UnimplementedRegistryServiceServer
	cfg RegistrationConfig
	log *slog.Logger
}

var _ registryv1.RegistryServiceServer = (*Registration)(nil)

// NewRegistration validates cfg and returns the service.
func NewRegistration(cfg RegistrationConfig) (*Registration, error) {
	switch {
	case cfg.Registrar == nil:
		return nil, errors.New("api: RegistrationConfig.Registrar is required")
	case cfg.TrustDomain.IsZero():
		return nil, errors.New("api: RegistrationConfig.TrustDomain is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Registration{cfg: cfg, log: cfg.Logger.With("component", "registration")}, nil
}

// Register implements RegistryService.Register.
func (r *Registration) Register(ctx context.Context, req *registryv1.RegisterRequest) (*registryv1.RegisterResponse, error) {
	pin := req.GetInstance()
	if pin == nil {
		return nil, status.Error(codes.InvalidArgument, "instance is required")
	}
	in := registry.Instance{
		ID: pin.GetId(), Service: pin.GetService(), Address: pin.GetAddress(), Port: int(pin.GetPort()),
		Protocol: registry.Protocol(pin.GetProtocol()), Zone: pin.GetZone(), Weight: int(pin.GetWeight()),
		Metadata: maps.Clone(pin.GetMetadata()), TLS: pin.GetTls(),
	}
	if err := in.Validate(); err != nil {
		return nil, status.Error(codes.InvalidArgument, "instance."+trimRegistryPrefix(err))
	}
	c, err := r.authorize(ctx, in.Service, "register an instance of")
	if err != nil {
		return nil, err
	}
	ttl := req.GetTtl().AsDuration()
	if req.GetTtl() != nil && ttl <= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "ttl: %s is not positive", ttl)
	}
	lease, granted, err := r.cfg.Registrar.Register(ctx, in, ttl)
	if err != nil {
		return nil, r.toStatus(err)
	}
	r.log.Info("registered", "instance", in.Service+"/"+in.ID, "address", in.HostPort(), "lease", fmt.Sprintf("%x", lease), "ttl", granted, "caller", c.who)
	return &registryv1.RegisterResponse{LeaseId: lease, Ttl: durationpb.New(granted)}, nil
}

// KeepAlive implements RegistryService.KeepAlive.
func (r *Registration) KeepAlive(ctx context.Context, req *registryv1.KeepAliveRequest) (*registryv1.KeepAliveResponse, error) {
	if err := checkLeaseRequest(req.GetLeaseId(), req.GetService(), req.GetInstanceId()); err != nil {
		return nil, err
	}
	if _, err := r.authorize(ctx, req.GetService(), "renew an instance of"); err != nil {
		return nil, err
	}
	ttl, err := r.cfg.Registrar.KeepAlive(ctx, req.GetLeaseId(), req.GetService(), req.GetInstanceId())
	if err != nil {
		return nil, r.toStatus(err)
	}
	return &registryv1.KeepAliveResponse{Ttl: durationpb.New(ttl)}, nil
}

// Deregister implements RegistryService.Deregister.
func (r *Registration) Deregister(ctx context.Context, req *registryv1.DeregisterRequest) (*registryv1.DeregisterResponse, error) {
	if err := checkLeaseRequest(req.GetLeaseId(), req.GetService(), req.GetInstanceId()); err != nil {
		return nil, err
	}
	c, err := r.authorize(ctx, req.GetService(), "deregister an instance of")
	if err != nil {
		return nil, err
	}
	if err := r.cfg.Registrar.Deregister(ctx, req.GetLeaseId(), req.GetService(), req.GetInstanceId()); err != nil {
		return nil, r.toStatus(err)
	}
	r.log.Info("deregistered", "instance", req.GetService()+"/"+req.GetInstanceId(), "lease", fmt.Sprintf("%x", req.GetLeaseId()), "caller", c.who)
	return &registryv1.DeregisterResponse{}, nil
}

func checkLeaseRequest(lease int64, service, id string) error {
	switch {
	case lease == 0:
		return status.Error(codes.InvalidArgument, "lease_id is required (from Register)")
	case !registry.ValidName(service):
		return status.Errorf(codes.InvalidArgument, "service: %q is not a lowercase DNS label of at most 63 characters", service)
	case id == "":
		return status.Error(codes.InvalidArgument, "instance_id is required")
	}
	return nil
}

// authorize returns the caller when it may write instances of service:
// the caller the management API's Authorizer resolved, else the peer's
// verified SVID, else (on a port without authentication) anyone.
func (r *Registration) authorize(ctx context.Context, service, what string) (caller, error) {
	c, ok := callerFrom(ctx)
	if !ok {
		var err error
		if c, ok, err = certCaller(ctx, r.cfg.TrustDomain); err != nil {
			return caller{}, err
		}
	}
	switch {
	case !ok && r.cfg.RequireIdentity:
		return caller{}, status.Errorf(codes.Unauthenticated, "registering needs the service's SVID (a sidecar's --join-token-file) or a token")
	case !ok:
		return caller{role: roleOpen, who: "an unauthenticated caller"}, nil
	case c.role == RoleAdmin:
		return c, nil
	case c.role == RoleWorkload && c.service == service:
		return c, nil
	case c.role == RoleWorkload:
		r.log.Warn("refused a registration for another service", "caller", c.who, "service", service)
		return caller{}, status.Errorf(codes.PermissionDenied, "%s may not %s %q: a service registers only its own instances", c.who, what, service)
	}
	return caller{}, status.Errorf(codes.PermissionDenied, "%s (role %s) may not %s %q", c.who, c.role, what, service)
}

// toStatus maps the Registrar's errors to status codes.
func (r *Registration) toStatus(err error) error {
	var fe *registry.FieldError
	switch {
	case errors.As(err, &fe):
		return status.Error(codes.InvalidArgument, trimRegistryPrefix(err))
	case errors.Is(err, etcdstore.ErrRegistrationGone):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, etcdstore.ErrLeaseMismatch):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
		return status.Error(codes.Unavailable, err.Error())
	}
	r.log.Error("registration failed", "err", err)
	return status.Error(codes.Unavailable, err.Error())
}

// trimRegistryPrefix turns "registry: invalid instance: port: ..." into
// "port: ...".
func trimRegistryPrefix(err error) string {
	var fe *registry.FieldError
	if errors.As(err, &fe) {
		return fe.Field + ": " + fe.Reason
	}
	return err.Error()
}
