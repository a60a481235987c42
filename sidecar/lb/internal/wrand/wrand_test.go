package wrand

import (
	"math"
	"slices"
	"testing"
)

// sweep maps n evenly spaced random numbers through pick and counts the
// indices: exact shares, no randomness in the test.
func sweep(n int, pick func(r uint64) int) map[int]int {
	got := map[int]int{}
	step := math.MaxUint64 / uint64(n)
	for k := range n {
		got[pick(uint64(k)*step)]++
	}
	return got
}

func TestIndexExcluding(t *testing.T) {
	tests := []struct {
		name     string
		weights  []uint32
		excluded []int
		want     map[int]int // of 900 draws
	}{
		{"unequal weights, the heaviest excluded", []uint32{4, 4, 1}, []int{0}, map[int]int{1: 720, 2: 180}},
		{"unequal weights, the lightest excluded", []uint32{4, 4, 1}, []int{2}, map[int]int{0: 450, 1: 450}},
		{"unequal weights, two excluded", []uint32{1, 2, 3, 3}, []int{1, 2}, map[int]int{0: 225, 3: 675}},
		{"equal weights, two excluded", []uint32{7, 7, 7, 7, 7}, []int{1, 3}, map[int]int{0: 300, 2: 300, 4: 300}},
		{"nothing excluded is Index", []uint32{1, 2}, nil, map[int]int{0: 300, 1: 600}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New(tc.weights)
			got := sweep(900, func(r uint64) int {
				i := s.IndexExcluding(r, tc.excluded)
				if slices.Contains(tc.excluded, i) {
					t.Fatalf("IndexExcluding(%d, %v) = %d, an excluded index", r, tc.excluded, i)
				}
				return i
			})
			for i, n := range tc.want {
				if d := got[i] - n; d < -1 || d > 1 { // rounding at interval edges
					t.Errorf("index %d drawn %d of 900 times, want %d (all: %v)", i, got[i], n, got)
				}
			}
		})
	}
}
