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
	a := &authorizer{cfg: cfg, log: cfg.Logger.With("component", "api-auth")}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := a.authorize(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := a.authorize(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}

type authorizer struct {
	cfg AuthConfig
	log *slog.Logger
}

// authorize returns nil when the caller may call method, else a status
// error with the reason.
func (a *authorizer) authorize(ctx context.Context, method string) error {
	if strings.HasPrefix(method, "/grpc.health.v1.Health/") {
		return nil
	}
	role, who, err := a.caller(ctx)
	if err != nil {
		a.log.Info("refused an unauthenticated call", "method", method, "reason", err)
		return err
	}
	if role == RoleAdmin || readOnly(method) {
		return nil
	}
	a.log.Warn("refused a call", "method", method, "caller", who, "role", role)
	return status.Errorf(codes.PermissionDenied, "%s (role %s) may only read; %s needs the admin role", who, role, method)
}

// caller resolves the caller's role and a description of it.
func (a *authorizer) caller(ctx context.Context) (role, who string, err error) {
	p, _ := peer.FromContext(ctx)
	if p != nil {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
			id, err := x509svid.IDFromCert(ti.State.VerifiedChains[0][0])
			if err != nil {
				return "", "", status.Errorf(codes.Unauthenticated, "client certificate: %v", err)
			}
			if !id.MemberOf(a.cfg.TrustDomain) {
				return "", "", status.Errorf(codes.Unauthenticated, "client certificate %s is not of trust domain %s", id, a.cfg.TrustDomain)
			}
			if admin, _ := identity.AdminID(a.cfg.TrustDomain); id == admin {
				return RoleAdmin, id.String(), nil
			}
			if _, _, err := identity.ParseServiceID(id); err != nil {
				return "", "", status.Errorf(codes.PermissionDenied, "client certificate %s is neither the admin nor a workload identity", id)
			}
			return RoleWorkload, id.String(), nil
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	auth := md.Get("authorization")
	if len(auth) == 0 {
		return "", "", status.Error(codes.Unauthenticated, "the management API needs credentials: a bearer token (--token, $SHOAL_TOKEN) or a client certificate (--cert/--key)")
	}
	scheme, tok, ok := strings.Cut(auth[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", "", status.Error(codes.Unauthenticated, `authorization: want "Bearer <token>"`)
	}
	role, err = a.cfg.TokenRole(ctx, strings.TrimSpace(tok))
	switch {
	case errors.Is(err, ErrUnknownToken):
		return "", "", status.Error(codes.Unauthenticated, "bearer token unknown or expired")
	case err != nil:
		return "", "", status.Errorf(codes.Unavailable, "check bearer token: %v", err)
	}
	return role, "a " + role + " token", nil
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
