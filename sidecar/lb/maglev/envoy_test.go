package maglev

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shoal-mesh/shoal/sidecar/lb"
)

// TestTableMatchesEnvoy replays Envoy's MaglevLoadBalancerTest.Basic
// (table size 7, hosts 127.0.0.1:90..95).
func TestTableMatchesEnvoy(t *testing.T) {
	var eps []*lb.Endpoint
	for port := 90; port <= 95; port++ {
		eps = append(eps, &lb.Endpoint{Address: fmt.Sprintf("127.0.0.1:%d", port), Weight: 1, Healthy: true})
	}
	want := []uint32{2, 4, 0, 1, 5, 0, 3}
	if diff := cmp.Diff(want, newTable(eps, 7)); diff != "" {
		t.Errorf("table (-envoy +got):\n%s", diff)
	}
}
