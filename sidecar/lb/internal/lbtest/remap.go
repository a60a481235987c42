package lbtest

import (
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/lb"
)

// Remap builds a picker over n equal endpoints and one over the same set
// without the last endpoint, routes keys through both, and returns the
// share of keys that moved and the number of keys that moved although
// their first endpoint survived.
func Remap(t testing.TB, bld lb.Builder, cfg lb.Config, n, keys int) (moved float64, survivorsMoved int) {
	t.Helper()
	eps := Equal(n)
	before := bld.Build(eps, cfg)
	after := bld.Build(eps[:n-1], cfg)
	left := eps[n-1]
	var m int
	for i := range keys {
		a, err := before.Pick(KeyInfo(i))
		if err != nil {
			t.Fatal(err)
		}
		b, err := after.Pick(KeyInfo(i))
		if err != nil {
			t.Fatal(err)
		}
		if a != b {
			m++
			if a != left {
				survivorsMoved++
			}
		}
	}
	return float64(m) / float64(keys), survivorsMoved
}
