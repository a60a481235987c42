package gossip_test

import (
	"strings"
	"testing"

	"github.com/shoal-mesh/shoal/internal/metric"
	"github.com/shoal-mesh/shoal/registry/gossip"
)

// A second member on a port that is already bound fails with an error (a
// control plane started twice on the same --gossip-listen once crashed here)
// and leaves its metrics unregistered, so a retry on a free port works.
func TestNewOnABusyPortFailsCleanly(t *testing.T) {
	first := startMember(t, 0, nil)
	reg := metric.NewRegistry()
	cfg := gossip.DefaultConfig("node-busy", gossip.RoleControlPlane)
	cfg.BindPort = first.Port()
	cfg.Logger = testLogger()
	cfg.Registerer = reg
	m, err := gossip.New(cfg)
	if err == nil {
		m.Close()
		t.Fatalf("New on the busy port %d: nil error", first.Port())
	}
	if !strings.Contains(err.Error(), "listen") {
		t.Errorf("error = %v, want it to say the listen failed", err)
	}
	cfg.BindPort = 0
	m, err = gossip.New(cfg)
	if err != nil {
		t.Fatalf("New on a free port after the failure: %v", err)
	}
	m.Close()
}
