package ringhash

import (
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/internal/lbtest"
)

func TestRemapOnEndpointLeaving(t *testing.T) {
	const keys = 10000
	tests := []struct {
		name          string
		hashesPerW    uint64
		maxMoved      float64
		survivorsStay bool
	}{
		{
			name:          "stable sizing moves only the departed endpoint's keys",
			hashesPerW:    400,
			maxMoved:      1.0/3 + 0.05,
			survivorsStay: true,
		},
		{
			// Envoy gives each of n hosts ceil(1024/n) entries, so the two
			// survivors gain entries and take some of each other's keys:
			// about 41 % of keys move. Kept for compatibility with Envoy.
			name:     "Envoy sizing moves the departed endpoint's keys and some more",
			maxMoved: 1.0/3 + 0.12,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := lb.DefaultConfig()
			cfg.RingHash.HashesPerWeight = tc.hashesPerW
			moved, survivorsMoved := lbtest.Remap(t, Builder{}, cfg, 3, keys)
			if moved > tc.maxMoved {
				t.Errorf("%.3f of keys moved, want <= %.3f", moved, tc.maxMoved)
			}
			if tc.survivorsStay && survivorsMoved != 0 {
				t.Errorf("%d keys of surviving endpoints moved, want 0", survivorsMoved)
			}
		})
	}
}
