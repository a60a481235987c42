package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-mesh/shoal/identity"
	identityv1 "github.com/shoal-mesh/shoal/proto/shoal/identity/v1"
	"github.com/shoal-mesh/shoal/registry/gossip"
)

// TicketTTL is the lifetime of gossip tickets; members renew them at half.
const TicketTTL = time.Hour

// SignGossipTicket signs a gossip ticket (gossip.SignTicket) binding member
// name to service with the intermediate's key.
func (ca *CA) SignGossipTicket(name, service string, expires time.Time) ([]byte, error) {
	return gossip.SignTicket(ca.key, name, service, expires)
}

// TicketKeys returns the keys gossip tickets are verified with: the
// intermediate's public key, PKIX DER.
func (ca *CA) TicketKeys() ([][]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(ca.cert.PublicKey)
	if err != nil {
		return nil, err
	}
	return [][]byte{der}, nil
}

// GossipKeys returns the current gossip keyring (primary first) and label.
// It is called for every GetGossipKeys; the result is owned by the caller.
type GossipKeys func() (keys [][]byte, label string)

// GossipService implements GossipService: the gossip keyring and a ticket
// for members that present a workload SVID. It is a gRPC edge: errors
// become status codes here. Safe for concurrent use.
type GossipService struct {
	identityv1.UnimplementedGossipServiceServer

	ca   *CA
	keys GossipKeys // nil: gossip is not authenticated
	log  *slog.Logger
	now  func() time.Time
}

// NewGossipService returns the service over ca; keys nil makes every call
// FAILED_PRECONDITION (gossip not authenticated on this control plane).
func NewGossipService(ca *CA, keys GossipKeys, log *slog.Logger) (*GossipService, error) {
	if ca == nil {
		return nil, errors.New("identity: NewGossipService: CA is required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &GossipService{ca: ca, keys: keys, log: log.With("component", "gossip-keys"), now: time.Now}, nil
}

// Register adds GossipService to a server (the xDS server).
func (g *GossipService) Register(s *grpc.Server) { identityv1.RegisterGossipServiceServer(s, g) }

// GetGossipKeys implements GossipService.GetGossipKeys.
func (g *GossipService) GetGossipKeys(ctx context.Context, req *identityv1.GetGossipKeysRequest) (*identityv1.GetGossipKeysResponse, error) {
	if g.keys == nil {
		return nil, status.Error(codes.FailedPrecondition, "this control plane's gossip is not authenticated (--gossip-auth off, or its gossip listens on loopback): use --gossip-key if any")
	}
	state, ok := tlsState(ctx)
	if !ok || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return nil, status.Error(codes.Unauthenticated, "GossipService needs the caller's SVID as a TLS client certificate")
	}
	id, err := x509svid.IDFromCert(state.VerifiedChains[0][0])
	if err != nil {
		return nil, status.Errorf(codes.PermissionDenied, "client certificate: %v", err)
	}
	if !id.MemberOf(g.ca.TrustDomain()) {
		return nil, status.Errorf(codes.PermissionDenied, "%s is not of trust domain %s", id, g.ca.TrustDomain())
	}
	_, service, err := identity.ParseServiceID(id)
	if err != nil {
		return nil, status.Errorf(codes.PermissionDenied, "%v", err)
	}
	name := req.GetMemberName()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "member_name: required (the caller's gossip node name)")
	}
	exp := g.now().Add(TicketTTL)
	ticket, err := g.ca.SignGossipTicket(name, service, exp)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	tk, err := g.ca.TicketKeys()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	keys, label := g.keys()
	g.log.Debug("handed out the gossip keyring", "id", id.String(), "member", name)
	return &identityv1.GetGossipKeysResponse{Keys: keys, Ticket: ticket, TicketKeys: tk,
		TicketExpiresAt: timestamppb.New(exp), Label: label}, nil
}
