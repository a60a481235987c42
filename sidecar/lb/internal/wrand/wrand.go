// Package wrand picks indices at random in proportion to integer weights.
// It is shared by the random, least request and least loaded pickers.
package wrand

import (
	"math/bits"
	"sort"
)

// Sampler maps a uniform 64-bit random number to an index, each index i
// with probability weights[i]/sum. It is immutable after New and safe for
// concurrent use; Index does not allocate.
type Sampler struct {
	n int
	// cum holds prefix sums of the weights; nil when all weights are equal,
	// which makes Index O(1).
	cum []uint64
}

// New returns a sampler over weights. It copies what it needs; the caller
// keeps ownership of weights.
func New(weights []uint32) *Sampler {
	s := &Sampler{n: len(weights)}
	for _, w := range weights {
		if w != weights[0] {
			s.cum = make([]uint64, len(weights))
			var sum uint64
			for i, w := range weights {
				sum += uint64(w)
				s.cum[i] = sum
			}
			break
		}
	}
	return s
}

// Index maps the random number r to an index in [0, n). n must be > 0.
func (s *Sampler) Index(r uint64) int {
	if s.cum == nil {
		return Intn(r, s.n)
	}
	total := s.cum[len(s.cum)-1]
	x, _ := bits.Mul64(r, total) // uniform in [0, total) (Lemire)
	return sort.Search(len(s.cum), func(i int) bool { return s.cum[i] > x })
}

// Intn maps the random number r to [0, n) without division.
func Intn(r uint64, n int) int {
	hi, _ := bits.Mul64(r, uint64(n))
	return int(hi)
}

// IndexExcluding is Index over the indices not in excluded, which must be
// sorted ascending, distinct, each in [0, n), and fewer than n: each
// remaining index i with probability weights[i] / (sum of the remaining
// weights). It samples without replacement in one draw (no redraws), so
// that a heavy index does not crowd the others out of a set of distinct
// candidates.
func (s *Sampler) IndexExcluding(r uint64, excluded []int) int {
	if s.cum == nil {
		i := Intn(r, s.n-len(excluded))
		for _, e := range excluded { // shift over each excluded index at or below
			if i >= e {
				i++
			}
		}
		return i
	}
	total := s.cum[len(s.cum)-1]
	for _, e := range excluded {
		total -= s.weight(e)
	}
	x, _ := bits.Mul64(r, total)
	for _, e := range excluded { // shift over each excluded interval at or below
		if start := s.cum[e] - s.weight(e); x >= start {
			x += s.weight(e)
		}
	}
	return sort.Search(len(s.cum), func(i int) bool { return s.cum[i] > x })
}

func (s *Sampler) weight(i int) uint64 {
	if i == 0 {
		return s.cum[0]
	}
	return s.cum[i] - s.cum[i-1]
}
