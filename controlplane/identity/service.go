package identity

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-mesh/shoal/identity"
	identityv1 "github.com/shoal-mesh/shoal/proto/shoal/identity/v1"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// DefaultSVIDTTL is the lifetime of workload certificates (--svid-ttl).
const DefaultSVIDTTL = 24 * time.Hour

// MinSVIDTTL is the shortest --svid-ttl: holders renew at half of it.
const MinSVIDTTL = 5 * time.Second

// servingCertTTL is the lifetime of the IdentityService's own certificate;
// it is replaced at half its lifetime.
const servingCertTTL = 24 * time.Hour

// ServiceConfig configures NewService.
type ServiceConfig struct {
	// CA signs. Required.
	CA *CA
	// Tokens keeps join tokens. Required.
	Tokens *TokenStore
	// SVIDTTL is the SVID lifetime; zero means DefaultSVIDTTL.
	SVIDTTL time.Duration
	// ServingNames are extra subject alternative names (DNS names or IP
	// addresses) of the control plane's serving certificate, for clients
	// that verify a host name (gRPC bootstraps' TLS channel credentials).
	ServingNames []string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Service implements IdentityService (served on the xDS port with the
// credentials from Creds) and TokenService (served on the management API).
// It is the gRPC edge of this package: errors become status codes here.
// Safe for concurrent use.
type Service struct {
	identityv1.UnimplementedIdentityServiceServer
	shoalv1.UnimplementedTokenServiceServer

	cfg ServiceConfig
	log *slog.Logger
	now func() time.Time

	// mu guards serving and signed.
	mu      sync.Mutex
	serving *tls.Certificate
	// signed is the latest SVID signed per SPIFFE ID and instance, for
	// `shoal status`; expired entries are dropped when listed.
	signed map[signedKey]*shoalv1.WorkloadIdentity
}

type signedKey struct{ id, instance string }

// NewService validates cfg and returns a Service.
func NewService(cfg ServiceConfig) (*Service, error) {
	switch {
	case cfg.CA == nil:
		return nil, errors.New("identity: ServiceConfig.CA is required")
	case cfg.Tokens == nil:
		return nil, errors.New("identity: ServiceConfig.Tokens is required")
	}
	if cfg.SVIDTTL == 0 {
		cfg.SVIDTTL = DefaultSVIDTTL
	}
	if cfg.SVIDTTL < MinSVIDTTL {
		return nil, fmt.Errorf("identity: --svid-ttl %s is below the minimum %s", cfg.SVIDTTL, MinSVIDTTL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("component", "identity"), now: time.Now}, nil
}

// Creds returns the xDS port's credentials: TLS with a serving certificate
// from the CA (client SVIDs verified when given) for IdentityService,
// plain for xDS clients that do not start TLS.
func (s *Service) Creds() credentials.TransportCredentials {
	return NewSniffingCreds(s.ServerTLSConfig())
}

// ServerTLSConfig is the TLS server side of the control plane's ports:
// its serving certificate from the CA, client certificates of the mesh
// verified when given. The caller may modify the returned config.
func (s *Service) ServerTLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(s.cfg.CA.Root())
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.servingCert() },
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      pool,
	}
}

// servingCert returns the current serving certificate, making a new one
// when none is left with more than half its lifetime.
func (s *Service) servingCert() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if c := s.serving; c != nil && now.Before(c.Leaf.NotBefore.Add(c.Leaf.NotAfter.Sub(c.Leaf.NotBefore)/2)) {
		return c, nil
	}
	var dns []string
	var ips []net.IP
	for _, n := range s.cfg.ServingNames {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, n)
		}
	}
	chain, key, err := s.cfg.CA.ServingCertFor(servingCertTTL, now, dns, ips...)
	if err != nil {
		return nil, err
	}
	c := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, cert := range chain {
		c.Certificate = append(c.Certificate, cert.Raw)
	}
	s.serving = c
	return c, nil
}

// Register adds IdentityService to a server (the xDS server).
func (s *Service) Register(g *grpc.Server) { identityv1.RegisterIdentityServiceServer(g, s) }

// RegisterAdmin adds TokenService to a server (the management API).
func (s *Service) RegisterAdmin(g *grpc.Server) { shoalv1.RegisterTokenServiceServer(g, s) }

// Sign implements IdentityService.Sign.
func (s *Service) Sign(ctx context.Context, req *identityv1.SignRequest) (*identityv1.SignResponse, error) {
	state, ok := tlsState(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "IdentityService needs TLS: connect with TLS to the xDS port")
	}
	csr, err := x509.ParseCertificateRequest(req.GetCsr())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "csr: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "csr: signature: %v", err)
	}
	id, how, err := s.caller(ctx, req.GetJoinToken(), state)
	if err != nil {
		return nil, err
	}
	for _, u := range csr.URIs {
		if u.String() != id.String() {
			s.log.Warn("refused a CSR for another identity", "asked", u.String(), "allowed", id.String(), "by", how)
			return nil, status.Errorf(codes.PermissionDenied, "the %s allows %s, the CSR asks for %s", how, id, u)
		}
	}
	chain, err := s.cfg.CA.SignSVID(id, csr.PublicKey, s.cfg.SVIDTTL, s.now())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	resp := &identityv1.SignResponse{SpiffeId: id.String(), ExpiresAt: timestamppb.New(chain[0].NotAfter)}
	for _, c := range chain {
		resp.CertChain = append(resp.CertChain, c.Raw)
	}
	resp.TrustBundle = [][]byte{s.cfg.CA.Root().Raw}
	s.log.Debug("signed an SVID", "id", id.String(), "by", how, "expires", chain[0].NotAfter)
	s.record(ctx, id, req.GetInstance(), chain[0])
	return resp, nil
}

// caller resolves the identity a Sign call may have: the token's, or the
// one of the client's verified SVID.
func (s *Service) caller(ctx context.Context, token string, state tls.ConnectionState) (spiffeid.ID, string, error) {
	if token != "" {
		tok, err := identity.ParseToken(token)
		if err != nil {
			return spiffeid.ID{}, "", status.Error(codes.InvalidArgument, err.Error())
		}
		id, err := s.cfg.Tokens.Redeem(ctx, tok)
		switch {
		case errors.Is(err, ErrTokenUnknown):
			return spiffeid.ID{}, "", status.Error(codes.Unauthenticated, err.Error())
		case err != nil:
			return spiffeid.ID{}, "", status.Error(codes.Unavailable, err.Error())
		}
		return id, "join token", nil
	}
	if len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return spiffeid.ID{}, "", status.Error(codes.Unauthenticated, "no join token and no client SVID")
	}
	id, err := x509svid.IDFromCert(state.VerifiedChains[0][0])
	if err != nil {
		return spiffeid.ID{}, "", status.Errorf(codes.PermissionDenied, "client certificate: %v", err)
	}
	if _, _, err := identity.ParseServiceID(id); err != nil || !id.MemberOf(s.cfg.CA.TrustDomain()) {
		return spiffeid.ID{}, "", status.Errorf(codes.PermissionDenied, "%s is not a workload identity of %s", id, s.cfg.CA.TrustDomain())
	}
	return id, "client SVID", nil
}

func tlsState(ctx context.Context) (tls.ConnectionState, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return tls.ConnectionState{}, false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	return ti.State, ok
}

// CreateToken implements TokenService.CreateToken.
func (s *Service) CreateToken(ctx context.Context, req *shoalv1.CreateTokenRequest) (*shoalv1.CreateTokenResponse, error) {
	if req.GetRole() != "" {
		return s.createAPIToken(ctx, req)
	}
	if !registry.ValidName(req.GetService()) {
		return nil, status.Errorf(codes.InvalidArgument, "service: %q is not a lowercase DNS label of at most 63 characters", req.GetService())
	}
	ns := req.GetNamespace()
	if ns == "" {
		ns = identity.DefaultNamespace
	}
	if !registry.ValidName(ns) {
		return nil, status.Errorf(codes.InvalidArgument, "namespace: %q is not a lowercase DNS label of at most 63 characters", ns)
	}
	id, err := identity.ServiceID(s.cfg.CA.TrustDomain(), ns, req.GetService())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	ttl := time.Duration(req.GetTtlSeconds()) * time.Second
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	uses := int(req.GetUses())
	if uses == 0 {
		uses = 1
	}
	if ttl < time.Second || ttl > MaxTokenTTL {
		return nil, status.Errorf(codes.InvalidArgument, "ttl_seconds: %d is outside 1-%d", req.GetTtlSeconds(), int64(MaxTokenTTL/time.Second))
	}
	if uses < 1 || uses > MaxTokenUses {
		return nil, status.Errorf(codes.InvalidArgument, "uses: %d is outside 1-%d", req.GetUses(), MaxTokenUses)
	}
	tok, exp, err := s.cfg.Tokens.Create(ctx, s.cfg.CA, id, ttl, uses)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	s.log.Info("join token created", "id", id.String(), "uses", uses, "expires", exp)
	return &shoalv1.CreateTokenResponse{Token: tok.String(), SpiffeId: id.String(), ExpiresAt: timestamppb.New(exp)}, nil
}

// createAPIToken makes a bearer token for the management API.
func (s *Service) createAPIToken(ctx context.Context, req *shoalv1.CreateTokenRequest) (*shoalv1.CreateTokenResponse, error) {
	role := req.GetRole()
	switch {
	case role != RoleAdmin && role != RoleViewer:
		return nil, status.Errorf(codes.InvalidArgument, "role: %q: want admin or viewer", role)
	case req.GetService() != "" || req.GetNamespace() != "":
		return nil, status.Error(codes.InvalidArgument, "role: an API token is not bound to a service: leave service and namespace empty")
	}
	ttl := time.Duration(req.GetTtlSeconds()) * time.Second
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < time.Second || ttl > MaxTokenTTL {
		return nil, status.Errorf(codes.InvalidArgument, "ttl_seconds: %d is outside 1-%d", req.GetTtlSeconds(), int64(MaxTokenTTL/time.Second))
	}
	tok, exp, err := s.cfg.Tokens.CreateAPIToken(ctx, s.cfg.CA, role, ttl)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	s.log.Info("API token created", "role", role, "expires", exp)
	return &shoalv1.CreateTokenResponse{Token: tok.String(), Role: role, ExpiresAt: timestamppb.New(exp)}, nil
}

// APITokenRole returns the role of a management API bearer token (for
// api.AuthConfig); ErrTokenUnknown when it is not a valid one.
func (s *Service) APITokenRole(ctx context.Context, token string) (string, error) {
	return s.cfg.Tokens.APITokenRole(ctx, token)
}

// APICreds returns the management API's credentials when it
// authenticates: TLS 1.3 with the CA's serving certificate, a client
// certificate verified against the root when given.
func (s *Service) APICreds() credentials.TransportCredentials {
	return credentials.NewTLS(s.APITLSConfig())
}

// APITLSConfig is the TLS configuration of APICreds, for a listener that
// serves more than gRPC (the registration endpoint's JSON).
func (s *Service) APITLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(s.cfg.CA.Root())
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.servingCert() },
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      pool,
	}
}

// JoinTokenID returns the identity a join token is bound to, without
// spending a use; ErrTokenUnknown when it is not a valid one.
func (s *Service) JoinTokenID(ctx context.Context, token string) (spiffeid.ID, error) {
	tok, err := identity.ParseToken(token)
	if err != nil {
		return spiffeid.ID{}, ErrTokenUnknown
	}
	return s.cfg.Tokens.Lookup(ctx, tok)
}

// record remembers the latest SVID of an instance for Identities.
func (s *Service) record(ctx context.Context, id spiffeid.ID, instance string, leaf *x509.Certificate) {
	wi := &shoalv1.WorkloadIdentity{
		SpiffeId: id.String(), Instance: instance, Serial: leaf.SerialNumber.Text(16),
		ExpiresAt: timestamppb.New(leaf.NotAfter), SignedAt: timestamppb.New(s.now()),
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		wi.Peer = p.Addr.String()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.signed == nil {
		s.signed = make(map[signedKey]*shoalv1.WorkloadIdentity)
	}
	s.signed[signedKey{id.String(), instance}] = wi
}

// Identities returns the latest unexpired SVID signed per workload
// instance, sorted by SPIFFE ID and instance. The result must not be
// modified. Safe for concurrent use.
func (s *Service) Identities() []*shoalv1.WorkloadIdentity {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*shoalv1.WorkloadIdentity, 0, len(s.signed))
	for k, wi := range s.signed {
		if !wi.GetExpiresAt().AsTime().After(now) {
			delete(s.signed, k)
			continue
		}
		out = append(out, wi)
	}
	slices.SortFunc(out, func(a, b *shoalv1.WorkloadIdentity) int {
		return cmp.Or(cmp.Compare(a.GetSpiffeId(), b.GetSpiffeId()), cmp.Compare(a.GetInstance(), b.GetInstance()))
	})
	return out
}

// TrustDomain is the CA's trust domain.
func (s *Service) TrustDomain() spiffeid.TrustDomain { return s.cfg.CA.TrustDomain() }
