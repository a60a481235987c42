package xdsserver

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/identity"
	"github.com/shoal-mesh/shoal/internal/metric"
)

// Reasons of shoal_xds_rejected_streams_total.
const (
	RejectPlaintext    = "plaintext"
	RejectNoSVID       = "no_svid"
	RejectBadSVID      = "bad_svid"
	RejectNodeMismatch = "node_mismatch"
)

// AuthConfig configures AuthOptions.
type AuthConfig struct {
	// TrustDomain of the workload SVIDs. Required.
	TrustDomain spiffeid.TrustDomain
	// Registerer receives shoal_xds_rejected_streams_total; nil registers
	// none.
	Registerer metric.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// AuthOptions returns the interceptors that bind the xDS port's calls to
// workload identities: the gRPC health service stays open; the
// IdentityService needs TLS (it checks join tokens and SVIDs itself);
// every other call (ADS, LRS, DrainService) needs a verified workload SVID
// of the trust domain over TLS, and a stream whose node names a cluster
// (or metadata "service") other than the SVID's service is ended with
// PermissionDenied. Refusals are counted in
// shoal_xds_rejected_streams_total{reason}. The server's credentials must
// verify client certificates (identity.SniffingCreds).
func AuthOptions(cfg AuthConfig) ([]grpc.ServerOption, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &xdsAuth{cfg: cfg, log: cfg.Logger.With("component", "xds-auth"),
		rejected: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_xds_rejected_streams_total",
			Help: "xDS port calls refused by identity: plaintext, no_svid, bad_svid (not a workload of the trust domain) or node_mismatch (a node claiming another service).",
		}, []string{"reason"}),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(a.rejected); err != nil {
			return nil, fmt.Errorf("xdsserver: register metrics: %w", err)
		}
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			svc, err := a.authorize(ctx, info.FullMethod)
			if err != nil {
				return nil, err
			}
			if err := a.checkNode(req, svc, info.FullMethod); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			svc, err := a.authorize(ss.Context(), info.FullMethod)
			if err != nil {
				return err
			}
			if svc == "" {
				return h(srv, ss)
			}
			ns := &nodeCheckedStream{ServerStream: ss, a: a, service: svc, method: info.FullMethod}
			err = h(srv, ns)
			// go-control-plane ends a stream whose receive failed without
			// passing the error on; the client is told why.
			if denied := ns.denied.Load(); denied != nil {
				return *denied
			}
			return err
		}),
	}, nil
}

type xdsAuth struct {
	cfg      AuthConfig
	log      *slog.Logger
	rejected *metric.CounterVec
}

func (a *xdsAuth) reject(reason string, code codes.Code, format string, args ...any) error {
	a.rejected.WithLabelValues(reason).Inc()
	err := status.Errorf(code, format, args...)
	a.log.Warn("refused an xDS port call", "reason", reason, "err", err)
	return err
}

// authorize returns the caller's service ("" for calls that need none).
func (a *xdsAuth) authorize(ctx context.Context, method string) (string, error) {
	if strings.HasPrefix(method, "/grpc.health.v1.Health/") {
		return "", nil
	}
	p, _ := peer.FromContext(ctx)
	var ti credentials.TLSInfo
	ok := false
	if p != nil {
		ti, ok = p.AuthInfo.(credentials.TLSInfo)
	}
	if !ok {
		return "", a.reject(RejectPlaintext, codes.Unauthenticated, "the xDS port needs TLS with a workload SVID beyond loopback (%s); give the proxy a --join-token-file", method)
	}
	if strings.HasPrefix(method, "/shoal.identity.v1.IdentityService/") {
		return "", nil
	}
	if len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return "", a.reject(RejectNoSVID, codes.Unauthenticated, "%s needs a client SVID (get one with a join token)", method)
	}
	id, err := x509svid.IDFromCert(ti.State.VerifiedChains[0][0])
	if err != nil {
		return "", a.reject(RejectBadSVID, codes.PermissionDenied, "client certificate: %v", err)
	}
	_, svc, err := identity.ParseServiceID(id)
	if err != nil || !id.MemberOf(a.cfg.TrustDomain) {
		return "", a.reject(RejectBadSVID, codes.PermissionDenied, "%s is not a workload identity of %s", id, a.cfg.TrustDomain)
	}
	return svc, nil
}

type nodeRequest interface{ GetNode() *corev3.Node }

// checkNode refuses a request whose node claims another service than svc.
func (a *xdsAuth) checkNode(req any, svc, method string) error {
	nr, ok := req.(nodeRequest)
	if !ok || svc == "" {
		return nil
	}
	n := nr.GetNode()
	if n == nil {
		return nil
	}
	claimed := n.GetCluster()
	if v, ok := n.GetMetadata().GetFields()["service"]; ok && v.GetStringValue() != "" && v.GetStringValue() != svc {
		claimed = v.GetStringValue()
	}
	if claimed != svc {
		return a.reject(RejectNodeMismatch, codes.PermissionDenied, "node %q claims service %q but the client's SVID is for %q (%s)", n.GetId(), claimed, svc, method)
	}
	return nil
}

// nodeCheckedStream checks the node of every request received.
type nodeCheckedStream struct {
	grpc.ServerStream
	a               *xdsAuth
	service, method string
	// denied is the refusal, set by RecvMsg (the handler's goroutines).
	denied atomic.Pointer[error]
}

func (s *nodeCheckedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	err := s.a.checkNode(m, s.service, s.method)
	if err != nil {
		s.denied.CompareAndSwap(nil, &err)
	}
	return err
}
