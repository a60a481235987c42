package lbtest

import (
	"fmt"
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/lb"
)

// BenchSizes are the endpoint counts every strategy is benchmarked at.
var BenchSizes = []int{3, 100, 1000}

// BenchmarkPick runs serial and parallel Pick benchmarks over equal-weight
// endpoint sets of BenchSizes. With hashed set, every pick carries a
// different hash key. Begin/End are called around each pick, as the proxy
// does, so least request sees moving counters.
func BenchmarkPick(b *testing.B, bld lb.Builder, hashed bool) {
	for _, n := range BenchSizes {
		p := bld.Build(Equal(n), lb.DefaultConfig())
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var pi lb.PickInfo
			for i := 0; b.Loop(); i++ {
				pickOnce(b, p, &pi, hashed, uint64(i))
			}
		})
		b.Run(fmt.Sprintf("endpoints=%d/parallel", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var pi lb.PickInfo
				for i := uint64(0); pb.Next(); i++ {
					pickOnce(b, p, &pi, hashed, i)
				}
			})
		})
	}
}

func pickOnce(b *testing.B, p lb.Picker, pi *lb.PickInfo, hashed bool, i uint64) {
	if hashed {
		pi.SetHash(i * 0x9E3779B97F4A7C15)
	}
	e, err := p.Pick(pi)
	if err != nil {
		b.Error(err) // Error, not Fatal: may run off the benchmark goroutine
		return
	}
	e.Begin()
	e.End()
}
