package api

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/identity"
)

// Roles on the management API.
const (
	// RoleAdmin may call everything.
	RoleAdmin = "admin"
	// RoleViewer may call the read methods (Get*, List*, Watch*, Status,
	// Traffic, WaitRemoved).
	RoleViewer = "viewer"
	// RoleWorkload is a workload's own SVID: read methods only.
	RoleWorkload = "workload"
)

// ErrUnknownToken is what AuthConfig.TokenRole returns (wrapped or not)
// for a bearer token that is not valid; it becomes Unauthenticated.
var ErrUnknownToken = errors.New("api: bearer token unknown or expired")

// AuthConfig configures AuthOptions.
type AuthConfig struct {
	// TrustDomain of the admin and workload SVIDs. Required.
	TrustDomain spiffeid.TrustDomain
	// TokenRole returns the role ("admin" or "viewer") of a bearer token;
	// an error that Is ErrUnknownToken means the token is not valid, any
	// other error is Unavailable. Required.
	TokenRole func(ctx context.Context, token string) (string, error)
	// JoinTokenID returns the identity a join token is bound to without
	// spending a use (an error that Is ErrUnknownToken when it is not a
	// valid one): such a token may call RegistryService for that identity's
	// service (the Node.js package's tokenFile). Nil accepts none.
	JoinTokenID func(ctx context.Context, token string) (spiffeid.ID, error)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// AuthOptions returns the interceptors that authenticate and authorize
// every call of the management API: the caller is the verified client
// certificate (the admin SVID spiffe://<td>/ns/shoal-system/svc/admin, or
// a workload SVID of the trust domain, read only), else the bearer token
// in the "authorization" metadata. A call without either fails with
// Unauthenticated, a call its role may not make with PermissionDenied,
// both before the handler runs (nothing is written). The gRPC health
// service stays open for probes. The server must use TLS credentials.
func AuthOptions(cfg AuthConfig) []grpc.ServerOption {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := NewAuthorizer(cfg)
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ctx, err := a.Authorize(ctx, info.FullMethod)
			if err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if _, err := a.Authorize(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}

// Authorizer authenticates and authorizes management API calls (see
// AuthOptions). Safe for concurrent use.
type Authorizer struct {
	cfg AuthConfig
	log *slog.Logger
}

// NewAuthorizer returns the Authorizer AuthOptions uses, for callers that
// are not gRPC (the registration endpoint's JSON over HTTP/1.1).
func NewAuthorizer(cfg AuthConfig) *Authorizer {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Authorizer{cfg: cfg, log: cfg.Logger.With("component", "api-auth")}
}

// Authorize returns ctx carrying the caller when it may call method, else
// a status error with the reason. RegistryService's write methods are let
// through for admin and workload callers: the handler checks that a
// workload writes only its own service.
func (a *Authorizer) Authorize(ctx context.Context, method string) (context.Context, error) {
	if strings.HasPrefix(method, "/grpc.health.v1.Health/") {
		return ctx, nil
	}
	c, err := a.caller(ctx, method)
	if err != nil {
		a.log.Info("refused an unauthenticated call", "method", method, "reason", err)
		return ctx, err
	}
	if c.role == RoleAdmin || readOnly(method) || registration(method) && c.role == RoleWorkload {
		return withCaller(ctx, c), nil
	}
	a.log.Warn("refused a call", "method", method, "caller", c.who, "role", c.role)
	if registration(method) {
		return ctx, status.Errorf(codes.PermissionDenied, "%s (role %s) may not register instances; a service's own SVID or join token, or the admin role, may", c.who, c.role)
	}
	return ctx, status.Errorf(codes.PermissionDenied, "%s (role %s) may only read; %s needs the admin role", c.who, c.role, method)
}

// caller resolves the caller: the verified client certificate, else the
// bearer token (an API token, or for RegistryService a join token).
func (a *Authorizer) caller(ctx context.Context, method string) (caller, error) {
	if c, ok, err := certCaller(ctx, a.cfg.TrustDomain); ok || err != nil {
		return c, err
	}
	md, _ := metadata.FromIncomingContext(ctx)
	auth := md.Get("authorization")
	if len(auth) == 0 || auth[0] == "" {
		return caller{}, status.Error(codes.Unauthenticated, "the management API needs credentials: a bearer token (--token, $SHOAL_TOKEN) or a client certificate (--cert/--key)")
	}
	scheme, tok, ok := strings.Cut(auth[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return caller{}, status.Error(codes.Unauthenticated, `authorization: want "Bearer <token>"`)
	}
	tok = strings.TrimSpace(tok)
	role, err := a.cfg.TokenRole(ctx, tok)
	if errors.Is(err, ErrUnknownToken) && registration(method) && a.cfg.JoinTokenID != nil {
		var id spiffeid.ID
		if id, err = a.cfg.JoinTokenID(ctx, tok); err == nil {
			return idCaller(id, a.cfg.TrustDomain, "the join token for ")
		}
	}
	switch {
	case errors.Is(err, ErrUnknownToken):
		return caller{}, status.Error(codes.Unauthenticated, "bearer token unknown or expired")
	case err != nil:
		return caller{}, status.Errorf(codes.Unavailable, "check bearer token: %v", err)
	}
	return caller{role: role, who: "a " + role + " token"}, nil
}

// caller is who makes a call, as the port authenticated it.
type caller struct {
	role string
	// service is a workload's service.
	service string
	who     string
}

type callerKey struct{}

func withCaller(ctx context.Context, c caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

func callerFrom(ctx context.Context) (caller, bool) {
	c, ok := ctx.Value(callerKey{}).(caller)
	return c, ok
}

// certCaller resolves a verified client certificate of the peer: ok is
// false when there is none.
func certCaller(ctx context.Context, td spiffeid.TrustDomain) (c caller, ok bool, err error) {
	p, _ := peer.FromContext(ctx)
	if p == nil {
		return caller{}, false, nil
	}
	ti, isTLS := p.AuthInfo.(credentials.TLSInfo)
	if !isTLS || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return caller{}, false, nil
	}
	id, err := x509svid.IDFromCert(ti.State.VerifiedChains[0][0])
	if err != nil {
		return caller{}, true, status.Errorf(codes.Unauthenticated, "client certificate: %v", err)
	}
	c, err = idCaller(id, td, "")
	return c, true, err
}

// idCaller is the caller holding id: the admin, or a workload of td.
func idCaller(id spiffeid.ID, td spiffeid.TrustDomain, prefix string) (caller, error) {
	if !id.MemberOf(td) {
		return caller{}, status.Errorf(codes.Unauthenticated, "client certificate %s is not of trust domain %s", id, td)
	}
	if admin, _ := identity.AdminID(td); id == admin {
		return caller{role: RoleAdmin, who: prefix + id.String()}, nil
	}
	_, svc, err := identity.ParseServiceID(id)
	if err != nil {
		return caller{}, status.Errorf(codes.PermissionDenied, "%s%s is neither the admin nor a workload identity", prefix, id)
	}
	return caller{role: RoleWorkload, service: svc, who: prefix + id.String()}, nil
}

// registration reports whether method is one of RegistryService's writes.
func registration(method string) bool {
	return strings.HasPrefix(method, "/shoal.registry.v1.RegistryService/")
}

// readOnly reports whether method only reads: Get*, List* and Watch* of
// the shoal.v1 services, MeshService's Status and Traffic, DrainService's
// WaitRemoved and server reflection. Everything else (including methods
// added later) needs the admin role.
func readOnly(method string) bool {
	svc, m, ok := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	if !ok {
		return false
	}
	switch {
	case strings.HasPrefix(svc, "grpc.reflection."):
		return true
	case svc == "shoal.v1.TokenService":
		return false
	case svc == "shoal.v1.MeshService" && (m == "Status" || m == "Traffic"):
		return true
	case svc == "shoal.drain.v1.DrainService" && m == "WaitRemoved":
		return true
	case strings.HasPrefix(svc, "shoal.v1."):
		return strings.HasPrefix(m, "Get") || strings.HasPrefix(m, "List") || strings.HasPrefix(m, "Watch")
	}
	return false
}
