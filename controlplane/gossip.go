package controlplane

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-mesh/shoal/internal/metric"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry/gossip"
)

// startGossip joins the mesh's gossip as a control plane. Gossip's view of
// every instance is overlaid on the registry's (meshState.setHealth), so
// consumers that do not gossip (Envoy, proxyless gRPC) see a crashed or
// failing instance as unhealthy in EDS long before its etcd lease expires.
func (s *Server) startGossip() error {
	if s.cfg.GossipListen == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(s.cfg.GossipListen)
	if err != nil {
		return fmt.Errorf("controlplane: --gossip-listen: %w", err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("controlplane: --gossip-listen %q: bad port", s.cfg.GossipListen)
	}
	gc := gossip.DefaultConfig("controlplane-"+s.id(), gossip.RoleControlPlane)
	gc.BindAddr, gc.BindPort, gc.Seeds = host, p, s.cfg.GossipJoin
	gc.Keys, gc.Label = s.cfg.GossipKeys, s.cfg.GossipLabel
	if s.cfg.gossipAuthOn() {
		if len(gc.Keys) == 0 {
			if gc.Keys, err = s.loadGossipKeyring(); err != nil {
				return err
			}
		}
		der, err := s.ca.TicketKeys()
		if err != nil {
			return err
		}
		if gc.TicketKeys, err = parseTicketKeys(der); err != nil {
			return err
		}
		s.log.Info("gossip is authenticated: encrypted, its keyring handed to members with an SVID (GossipService on the xDS port), health claims need a ticket for the instance's service", "gossip", s.cfg.GossipListen)
	}
	// Gossip's metrics live in a registry of their own, registered on the
	// control plane's (and unregistered when the member closes).
	greg := metric.NewRegistry()
	gc.Logger, gc.Registerer = s.log, greg
	if s.member, err = gossip.New(gc); err != nil {
		return err
	}
	s.gossipMetrics = greg
	if err := s.reg.Register(greg); err != nil {
		s.gossipMetrics = nil
		return fmt.Errorf("controlplane: register gossip metrics: %w", err)
	}
	if len(s.cfg.GossipJoin) > 0 {
		if _, err := s.member.Join(s.cfg.GossipJoin); err != nil {
			s.log.Warn("gossip join failed; will retry", "seeds", s.cfg.GossipJoin, "err", err)
		}
	}
	s.cancelGossip = s.member.Subscribe(s.onGossip)
	return nil
}

// GossipKeyringKey is the etcd key of the gossip keyring an authenticated
// control plane made itself (no --gossip-key): {"keys": [base64...]},
// primary first, shared by every control plane of the mesh and rewritten
// after each rotation step on this control plane's admin port.
const GossipKeyringKey = "/shoal/v1/gossip/keyring"

type storedKeyring struct {
	Keys [][]byte `json:"keys"`
}

// loadGossipKeyring returns the keyring in etcd, creating it with one
// random key if absent (a transaction, so concurrent control planes agree).
func (s *Server) loadGossipKeyring() ([][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(storedKeyring{Keys: [][]byte{key}}) // byte slices always marshal
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(GossipKeyringKey), "=", 0)).
		Then(clientv3.OpPut(GossipKeyringKey, string(b))).
		Else(clientv3.OpGet(GossipKeyringKey)).Commit()
	if err != nil {
		return nil, fmt.Errorf("controlplane: gossip keyring in etcd: %w", err)
	}
	if resp.Succeeded {
		s.log.Info("made a gossip key; kept in etcd for every control plane", "key", GossipKeyringKey)
		return [][]byte{key}, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	var kr storedKeyring
	if len(kvs) == 0 || json.Unmarshal(kvs[0].Value, &kr) != nil || len(kr.Keys) == 0 {
		return nil, fmt.Errorf("controlplane: gossip keyring in etcd at %s is malformed: delete it to make a new one", GossipKeyringKey)
	}
	return kr.Keys, nil
}

// saveGossipKeyring writes the member's keyring to etcd after a rotation
// step, when the keyring is the one kept there.
func (s *Server) saveGossipKeyring(ctx context.Context) error {
	if !s.cfg.gossipAuthOn() || len(s.cfg.GossipKeys) > 0 || s.member == nil {
		return nil
	}
	b, _ := json.Marshal(storedKeyring{Keys: s.member.Keys()})
	if _, err := s.client.Put(ctx, GossipKeyringKey, string(b)); err != nil {
		return fmt.Errorf("controlplane: save the gossip keyring: %w", err)
	}
	return nil
}

// gossipKeys is GossipService's view of the keyring: the member's live
// keyring, so members follow rotations.
func (s *Server) gossipKeys() ([][]byte, string) {
	label := s.cfg.GossipLabel
	if label == "" {
		label = "shoal"
	}
	if s.member == nil {
		return nil, label
	}
	return s.member.Keys(), label
}

func parseTicketKeys(der [][]byte) ([]crypto.PublicKey, error) {
	var out []crypto.PublicKey
	for _, d := range der {
		k, err := x509.ParsePKIXPublicKey(d)
		if err != nil {
			return nil, fmt.Errorf("controlplane: ticket key: %w", err)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.New("controlplane: no ticket key")
	}
	return out, nil
}

// persistedKeyring is the member behind the admin port's key rotation:
// each successful step is written to etcd (saveGossipKeyring).
type persistedKeyring struct {
	*gossip.Member
	s *Server
}

func (k persistedKeyring) InstallKey(b []byte) error { return k.save(k.Member.InstallKey(b)) }
func (k persistedKeyring) UseKey(b []byte) error     { return k.save(k.Member.UseKey(b)) }
func (k persistedKeyring) RemoveKey(b []byte) error  { return k.save(k.Member.RemoveKey(b)) }

func (k persistedKeyring) save(err error) error {
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return k.s.saveGossipKeyring(ctx)
}

// onGossip overlays a member's instances' health on the registry view.
func (s *Server) onGossip(ev gossip.Event) {
	for _, ih := range ev.Instances {
		st, known := s.member.Health(ih.InstanceKey)
		key := ih.Service + "/" + ih.ID
		if !known {
			s.state.setHealth(key, 0)
			continue
		}
		s.state.setHealth(key, st.Registry())
	}
}

// members lists the gossip members for MeshService.Status.
func (s *Server) members() []*shoalv1.Member {
	if s.member == nil {
		return nil
	}
	var out []*shoalv1.Member
	for _, p := range s.member.Peers() {
		m := &shoalv1.Member{Name: p.Name, Address: p.Addr, State: p.State.String(), Role: p.Role.String(), AppHealthy: true}
		for _, ih := range p.Instances {
			m.Instances = append(m.Instances, ih.Service+"/"+ih.ID)
			m.AppHealthy = m.AppHealthy && ih.Healthy
		}
		out = append(out, m)
	}
	return out
}
