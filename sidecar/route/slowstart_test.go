package route_test

import (
	"math"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// Envoy's slow start ramp: (elapsed/window)^(1/aggression), floored at
// min_weight_percent (10 by default), 1 once the window has passed.
func TestSlowStartFactor(t *testing.T) {
	w := 10 * time.Second
	for _, tc := range []struct {
		s       route.SlowStart
		elapsed time.Duration
		want    float64
	}{
		{route.SlowStart{}, 0, 1},
		{route.SlowStart{Window: w}, 0, 0.1},
		{route.SlowStart{Window: w}, 5 * time.Second, 0.5},
		{route.SlowStart{Window: w}, w, 1},
		{route.SlowStart{Window: w, Aggression: 2}, 2500 * time.Millisecond, 0.5},
		{route.SlowStart{Window: w, MinWeightPercent: 30}, time.Second, 0.3},
		{route.SlowStart{Window: w, MinWeightPercent: -1}, time.Second, 0.1},
		{route.SlowStart{Window: w, MinWeightPercent: -1}, 0, 0},
	} {
		if got := tc.s.Factor(tc.elapsed); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%+v after %s: %v, want %v", tc.s, tc.elapsed, got, tc.want)
		}
	}
}
