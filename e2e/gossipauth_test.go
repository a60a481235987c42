package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/shoal-mesh/shoal/e2e/harness"
	identityv1 "github.com/shoal-mesh/shoal/proto/shoal/identity/v1"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/registry/etcdstore"
	"github.com/shoal-mesh/shoal/registry/gossip"
)

// Issue 14, gossip: with --gossip-auth the sidecars get the gossip keyring
// from the control plane with their SVIDs (no --gossip-key anywhere), and a
// member speaks only for its own service. Rogues claim orders-1 and
// orders-2 (registered by the app itself, as the npm package does, so no
// sidecar vouches for it) unhealthy — one without the key, one holding
// web's identity and so the key — and web keeps routing to both.
func TestGossipAuthRogueClaimsChangeNothing(t *testing.T) {
	p := startMTLSPair(t, "--gossip-auth=required")
	waitAllAlive(t, p.cp, 3) // control plane, orders and web, on the control plane's keyring
	st, err := p.cp.Status(t)
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Member("orders-1"); m == nil || len(m.Instances) != 1 {
		t.Fatalf("the control plane does not take orders-1's sidecar's word for orders-1: %+v", m)
	}

	ctx, cancel := context.WithTimeout(t.Context(), harness.DefaultTimeout)
	defer cancel()
	reg, err := etcdstore.New(etcdClient(t, p.cp), nil).Register(ctx, registry.Instance{
		ID: "orders-2", Service: "orders", Address: "127.0.0.1", Port: p.ordersApp.Port}, registry.RegisterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	harness.Eventually(t, harness.DefaultTimeout, "web routes to orders-1 and orders-2", func() bool {
		return len(p.web.RoutableEndpoints("orders")) == 2
	})

	// Web's identity, the files a proxyless client would keep.
	dir := t.TempDir()
	tok := createToken(t, p.cp, p.tokDir, "web")
	if _, errOut, code := harness.Shoal(t, "identity", "fetch", "--xds", p.cp.XDS, "--join-token-file", tok, "--out", dir, "--once"); code != 0 {
		t.Fatalf("shoal identity fetch: exit %d: %s", code, errOut)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(p.cp.XDS, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13,
		InsecureSkipVerify: true, // the rogue does not care who the control plane is
	})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	keys, err := identityv1.NewGossipServiceClient(conn).GetGossipKeys(ctx, &identityv1.GetGossipKeysRequest{MemberName: "web-rogue"})
	if err != nil {
		t.Fatalf("GetGossipKeys with web's SVID: %v", err)
	}
	claim := []gossip.InstanceHealth{
		{InstanceKey: gossip.InstanceKey{Service: "orders", ID: "orders-1"}, Healthy: false},
		{InstanceKey: gossip.InstanceKey{Service: "orders", ID: "orders-2"}, Healthy: false},
	}
	rogue := func(name string, withKeys bool) (*gossip.Member, error) {
		cfg := gossip.DefaultConfig(name, gossip.RoleSidecar)
		cfg.Instances, cfg.Logger = claim, slog.New(slog.NewTextHandler(io.Discard, nil))
		if withKeys {
			cfg.Keys, cfg.Ticket = keys.GetKeys(), keys.GetTicket()
		}
		cfg.Timing.TCPTimeout = time.Second
		m, err := gossip.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		_, err = m.Join([]string{p.cp.Gossip})
		return m, err
	}
	if _, err := rogue("rogue-plain", false); err == nil {
		t.Fatal("a member without the gossip key joined")
	}
	if _, err := rogue("web-rogue", true); err != nil {
		t.Fatalf("web-identity member join: %v", err)
	}
	// Once web's sidecar lists the rogue, it has read its claim.
	harness.Eventually(t, harness.DefaultTimeout, "web's sidecar sees web-rogue", func() bool {
		for _, m := range memberView(t, p.web.Admin) {
			if m.Name == "web-rogue" && m.State == "alive" {
				return true
			}
		}
		return false
	})
	waitAllAlive(t, p.cp, 4)
	for i := range 20 {
		resp, err := http.Get(p.webURL + "/")
		if err != nil {
			t.Fatalf("request %d to orders after the rogue's claim: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d to orders after the rogue's claim: %s, want 200", i, resp.Status)
		}
	}
	if ep := p.web.RoutableEndpoints("orders"); len(ep) != 2 {
		t.Errorf("web's routable orders endpoints = %v, want orders-1's and orders-2's", ep)
	}
	if n := sumGossipCounter(t, []string{p.web.Admin, p.cp.Admin}, "shoal_gossip_claims_ignored_total"); n < 4 {
		t.Errorf("shoal_gossip_claims_ignored_total on web and the control plane = %d, want ≥ 4", n)
	}
	if out := p.cp.Output(); !strings.Contains(out, "ignoring a member's health claims") {
		t.Errorf("the control plane did not log the ignored claims")
	}
}
