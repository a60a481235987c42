package controlplane

import (
	"fmt"
	"net"
	"strconv"

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
