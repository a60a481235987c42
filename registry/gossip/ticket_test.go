package gossip_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/registry/gossip"
)

func webKey(i int) gossip.InstanceKey {
	return gossip.InstanceKey{Service: "web", ID: fmt.Sprintf("web-%d", i)}
}

func newCAKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ticket(t *testing.T, ca crypto.Signer, name, service string) []byte {
	t.Helper()
	b, err := gossip.SignTicket(ca, name, service, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRogueMembersCannotSpeakForOtherServices is the attack of issue 14:
// members holding the gossip key claim web-1..3 unhealthy. A member that
// requires tickets ignores every claim not backed by a ticket for web; one
// that does not (the mesh before identities) takes web out of rotation.
func TestRogueMembersCannotSpeakForOtherServices(t *testing.T) {
	ca := newCAKey(t)
	keys := []crypto.PublicKey{ca.Public()}
	start := func(name string, role gossip.Role, inst []gossip.InstanceHealth, tk []byte, verify []crypto.PublicKey) *gossip.Member {
		t.Helper()
		cfg := gossip.DefaultConfig(name, role)
		cfg.Instances, cfg.Ticket, cfg.TicketKeys = inst, tk, verify
		cfg.Keys, cfg.Logger = [][]byte{testKey}, testLogger()
		m, err := gossip.New(cfg)
		if err != nil {
			t.Fatalf("New(%s): %v", name, err)
		}
		t.Cleanup(func() { _ = m.Close() })
		return m
	}
	claimAllWeb := []gossip.InstanceHealth{{InstanceKey: webKey(1)}, {InstanceKey: webKey(2)}, {InstanceKey: webKey(3)}}
	webTicket := ticket(t, ca, "web-1", "web")

	verifier := start("controlplane-a", gossip.RoleControlPlane, nil, nil, keys)
	trusting := start("controlplane-old", gossip.RoleControlPlane, nil, nil, nil)
	members := []*gossip.Member{
		verifier, trusting,
		// web-1's own sidecar, with its ticket: its claim about web-1 counts.
		start("web-1", gossip.RoleSidecar, []gossip.InstanceHealth{{InstanceKey: webKey(1), Healthy: true}}, webTicket, keys),
		// An orders identity speaking for web, and for itself.
		start("orders-9", gossip.RoleSidecar, append(claimAllWeb,
			gossip.InstanceHealth{InstanceKey: gossip.InstanceKey{Service: "orders", ID: "orders-9"}, Healthy: true}),
			ticket(t, ca, "orders-9", "orders"), nil),
		// No ticket at all.
		start("rogue-plain", gossip.RoleSidecar, claimAllWeb, nil, nil),
		// web-1's ticket, copied out of its metadata, under another name.
		start("rogue-copy", gossip.RoleSidecar, claimAllWeb, webTicket, nil),
		// A ticket signed by another CA.
		start("web-2", gossip.RoleSidecar, claimAllWeb, ticket(t, newCAKey(t), "web-2", "web"), nil),
	}
	for _, m := range members[1:] {
		if _, err := m.Join([]string{verifier.Addr()}); err != nil {
			t.Fatalf("join %s: %v", m.Name(), err)
		}
	}
	waitFor(t, defaultTestTimeout, "every member alive with its claims", func() bool {
		s, known := trusting.Health(webKey(3))
		return countState(verifier, gossip.MemberAlive) == len(members) && known && s == gossip.StatusUnhealthy
	})

	// The old behaviour the attack used: a trusting member routes nothing
	// to web-2 and web-3 (web-1 keeps its own sidecar's healthy claim).
	for _, i := range []int{2, 3} {
		if s, _ := trusting.Health(webKey(i)); s.Routable() {
			t.Fatalf("a member without ticket keys should take the rogues' word for web-%d (control), got %v", i, s)
		}
	}
	// The verifier keeps web routable on etcd's word: nothing it believes
	// claims web-2 or web-3; web-1 is healthy as its own sidecar says.
	if s, known := verifier.Health(webKey(1)); !known || s != gossip.StatusHealthy {
		t.Errorf("web-1 on the verifier: %v (known %v), want healthy from its own sidecar", s, known)
	}
	for _, i := range []int{2, 3} {
		if s, known := verifier.Health(webKey(i)); known {
			t.Errorf("web-%d on the verifier: %v, want unknown (no member with a web ticket claims it)", i, s)
		}
	}
	if s, known := verifier.Health(gossip.InstanceKey{Service: "orders", ID: "orders-9"}); !known || s != gossip.StatusHealthy {
		t.Errorf("orders-9 speaking for itself: %v (known %v), want healthy", s, known)
	}
	for _, p := range verifier.Peers() {
		if p.Name != "web-1" && p.Name != "orders-9" && len(p.Instances) > 0 {
			t.Errorf("the verifier lists %s's claims %v, want none", p.Name, p.Instances)
		}
	}
}

func TestVerifyTicket(t *testing.T) {
	ca := newCAKey(t)
	keys := []crypto.PublicKey{ca.Public()}
	now := time.Now()
	expired, err := gossip.SignTicket(ca, "web-1", "web", now.Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		member  string
		ticket  []byte
		want    string
		wantErr error
	}{
		{name: "valid ticket names its service", member: "web-1", ticket: ticket(t, ca, "web-1", "web"), want: "web"},
		{name: "no ticket", member: "web-1", wantErr: gossip.ErrNoTicket},
		{name: "another member's ticket", member: "web-2", ticket: ticket(t, ca, "web-1", "web"), wantErr: gossip.ErrTicketInvalid},
		{name: "another CA's ticket", member: "web-1", ticket: ticket(t, newCAKey(t), "web-1", "web"), wantErr: gossip.ErrTicketInvalid},
		{name: "expired ticket", member: "web-1", ticket: expired, wantErr: gossip.ErrTicketExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := gossip.VerifyTicket(keys, tc.member, tc.ticket, now)
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Errorf("VerifyTicket = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
	if _, err := gossip.VerifyTicket(keys, "web-1", []byte{1, 2, 3}, now); err == nil {
		t.Error("a malformed ticket verified")
	}
}

// BenchmarkVerifyTicket is the cost a member pays per metadata update of a
// peer when it requires tickets (one ECDSA P-256 verification).
func BenchmarkVerifyTicket(b *testing.B) {
	ca, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tk, err := gossip.SignTicket(ca, "orders-host-3001", "orders", time.Now().Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	keys := []crypto.PublicKey{ca.Public()}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := gossip.VerifyTicket(keys, "orders-host-3001", tk, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(tk)), "ticket-bytes")
}
