package builtin

import (
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/internal/lbtest"
)

// TestPickDoesNotAllocate covers the paths benchmarks do not: unequal
// weights, exclusions, bounded loads.
func TestPickDoesNotAllocate(t *testing.T) {
	cfg := lb.DefaultConfig()
	cfg.RingHash.BoundedLoadFactor = 1.25
	for _, b := range builders(t) {
		for _, n := range []int{3, 50} {
			ws := make([]uint32, n)
			for i := range ws {
				ws[i] = uint32(1 + i%7)
			}
			p := b.Build(lbtest.Endpoints(ws...), cfg)
			var info lb.PickInfo
			info.SetHash(12345)
			info.Exclude(lbtest.Addr(0))
			info.Exclude(lbtest.Addr(1))
			allocs := testing.AllocsPerRun(200, func() {
				info.Hash += 0x9E3779B97F4A7C15
				e, err := p.Pick(&info)
				if err == nil {
					e.Begin()
					e.End()
				}
			})
			if allocs != 0 {
				t.Errorf("%s over %d endpoints: %v allocs per Pick, want 0", b.Name(), n, allocs)
			}
		}
	}
}
