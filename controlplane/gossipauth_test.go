package controlplane_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/controlplane"
	"github.com/shoal-mesh/shoal/controlplane/identity"
	shoalidentity "github.com/shoal-mesh/shoal/identity"
	identityv1 "github.com/shoal-mesh/shoal/proto/shoal/identity/v1"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/registry/etcdstore"
	"github.com/shoal-mesh/shoal/registry/gossip"
)

// svidCert signs a workload SVID for service with the control plane's CA.
func svidCert(t *testing.T, ca *identity.CA, service string) tls.Certificate {
	t.Helper()
	id, err := shoalidentity.ServiceID(ca.TrustDomain(), "default", service)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := ca.SignSVID(id, key.Public(), time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// gossipKeysClient dials the xDS port with TLS, presenting cert if given.
func gossipKeysClient(t *testing.T, xds string, ca *identity.CA, cert *tls.Certificate) identityv1.GossipServiceClient {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root())
	// The control plane's certificate names its SPIFFE ID, not a host.
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient(xds, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return identityv1.NewGossipServiceClient(conn)
}

// joinAs starts a gossip member named name, claiming claims, with the keys
// and ticket the control plane handed out (resp nil: no key, no ticket).
func joinAs(t *testing.T, name string, resp *identityv1.GetGossipKeysResponse, claims []gossip.InstanceHealth, seed string) (*gossip.Member, error) {
	t.Helper()
	cfg := gossip.DefaultConfig(name, gossip.RoleSidecar)
	cfg.Instances = claims
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if resp != nil {
		cfg.Keys, cfg.Ticket = resp.GetKeys(), resp.GetTicket()
	}
	cfg.Timing.TCPTimeout = time.Second
	m, err := gossip.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	_, err = m.Join([]string{seed})
	return m, err
}

// TestGossipSpeaksOnlyForItself is issue 14's gossip attack against a
// control plane with --gossip-auth: members claiming web-1..3 unhealthy —
// one without the key, one with the key and a ticket of orders — change
// nothing in the health the control plane serves, while web's own member
// still can (the overlay works).
func TestGossipSpeaksOnlyForItself(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	srv, _ := start(t, func(c *controlplane.Config) {
		c.DataDir = dataDir
		c.GossipAuth = controlplane.APIAuthRequired
	})
	a := srv.Addrs()
	waitReady(t, a.Admin)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ca, err := identity.Load(filepath.Join(dataDir, "ca"), spiffeid.RequireTrustDomainFromString(shoalidentity.DefaultTrustDomain))
	if err != nil {
		t.Fatal(err)
	}

	// The keyring is handed out only to SVID holders, and kept in etcd.
	if _, err := gossipKeysClient(t, a.XDS, ca, nil).GetGossipKeys(ctx, &identityv1.GetGossipKeysRequest{MemberName: "x"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("GetGossipKeys without an SVID = %v, want Unauthenticated", err)
	}
	webCert, ordersCert := svidCert(t, ca, "web"), svidCert(t, ca, "orders")
	webKeys, err := gossipKeysClient(t, a.XDS, ca, &webCert).GetGossipKeys(ctx, &identityv1.GetGossipKeysRequest{MemberName: "web-1"})
	if err != nil {
		t.Fatalf("GetGossipKeys with web's SVID: %v", err)
	}
	ordersKeys, err := gossipKeysClient(t, a.XDS, ca, &ordersCert).GetGossipKeys(ctx, &identityv1.GetGossipKeysRequest{MemberName: "orders-9"})
	if err != nil {
		t.Fatal(err)
	}
	if len(webKeys.GetKeys()) != 1 || len(webKeys.GetKeys()[0]) != 32 {
		t.Fatalf("keys = %d, want one 32-byte key", len(webKeys.GetKeys()))
	}
	if kv, err := srv.Client().Get(ctx, controlplane.GossipKeyringKey); err != nil || len(kv.Kvs) != 1 {
		t.Fatalf("keyring in etcd at %s: %v, %v", controlplane.GossipKeyringKey, kv, err)
	}
	pubs := make([]crypto.PublicKey, 0, 1)
	for _, d := range webKeys.GetTicketKeys() {
		k, err := x509.ParsePKIXPublicKey(d)
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, k)
	}
	if svc, err := gossip.VerifyTicket(pubs, "web-1", webKeys.GetTicket(), time.Now()); err != nil || svc != "web" {
		t.Fatalf("web's ticket verifies as %q, %v; want web", svc, err)
	}

	store := etcdstore.New(srv.Client(), nil)
	var claimAll []gossip.InstanceHealth
	for i := 1; i <= 3; i++ {
		in := registry.Instance{ID: fmt.Sprintf("web-%d", i), Service: "web", Address: "127.0.0.1", Port: 3000 + i}
		reg, err := store.Register(ctx, in, registry.RegisterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer reg.Close()
		claimAll = append(claimAll, gossip.InstanceHealth{InstanceKey: gossip.InstanceKey{Service: "web", ID: in.ID}})
	}
	conn, err := grpc.NewClient(a.API, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := func() map[string]shoalv1.HealthStatus {
		resp, err := shoalv1.NewRegistryServiceClient(conn).ListInstances(ctx, &shoalv1.ListInstancesRequest{Service: "web"})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]shoalv1.HealthStatus{}
		for _, in := range resp.GetInstances() {
			out[in.GetId()] = in.GetHealth()
		}
		return out
	}

	// Without the key: memberlist never lets it in.
	if _, err := joinAs(t, "rogue-plain", nil, claimAll, a.Gossip); err == nil {
		t.Fatal("a member without the gossip key joined")
	}
	// With the key and orders' ticket: in, but its claims about web count
	// for nothing. It speaks for orders (its own) so we know when it is seen.
	_, err = joinAs(t, "orders-9", ordersKeys, append(claimAll,
		gossip.InstanceHealth{InstanceKey: gossip.InstanceKey{Service: "orders", ID: "orders-9"}}), a.Gossip)
	if err != nil {
		t.Fatalf("orders member join: %v", err)
	}
	waitStatus(t, conn, "orders-9 in the control plane's member list", func(st *shoalv1.StatusResponse) bool {
		for _, m := range st.GetMembers() {
			if m.GetName() == "orders-9" && len(m.GetInstances()) == 1 && m.GetInstances()[0] == "orders/orders-9" {
				return true
			}
		}
		return false
	})
	for id, h := range health() {
		if h != shoalv1.HealthStatus_HEALTH_STATUS_UNSPECIFIED {
			t.Errorf("%s is %v after the orders member's claims, want unspecified (routable on etcd's word)", id, h)
		}
	}

	// web's own member, with web's ticket, is believed about web-1.
	if _, err := joinAs(t, "web-1", webKeys, claimAll[:1], a.Gossip); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); health()["web-1"] != shoalv1.HealthStatus_HEALTH_STATUS_UNHEALTHY; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("web-1's own member claiming it unhealthy: health %v, want unhealthy", health())
		}
	}
	if h := health(); h["web-2"] != shoalv1.HealthStatus_HEALTH_STATUS_UNSPECIFIED || h["web-3"] != shoalv1.HealthStatus_HEALTH_STATUS_UNSPECIFIED {
		t.Errorf("web-2/3: %v, want unspecified", h)
	}
}

func waitStatus(t *testing.T, conn *grpc.ClientConn, what string, ok func(*shoalv1.StatusResponse) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		st, err := shoalv1.NewMeshServiceClient(conn).Status(ctx, &shoalv1.StatusRequest{})
		if err == nil && ok(st) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: not within 20s (last %v)", what, err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval of a loop with a deadline
	}
}

// Without --gossip-auth the control plane does not hand out keys.
func TestGossipKeysOnlyWhenAuthenticated(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	srv, _ := start(t, func(c *controlplane.Config) { c.DataDir = dataDir })
	a := srv.Addrs()
	waitReady(t, a.Admin)
	ca, err := identity.Load(filepath.Join(dataDir, "ca"), spiffeid.RequireTrustDomainFromString(shoalidentity.DefaultTrustDomain))
	if err != nil {
		t.Fatal(err)
	}
	cert := svidCert(t, ca, "web")
	_, err = gossipKeysClient(t, a.XDS, ca, &cert).GetGossipKeys(t.Context(), &identityv1.GetGossipKeysRequest{MemberName: "web-1"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("GetGossipKeys with gossip on loopback (auto) = %v, want FailedPrecondition", err)
	}
}
