package ringhash

import (
	"cmp"
	"math"
	"slices"
	"strconv"

	"github.com/shoal-mesh/shoal/sidecar/lb"
)

// ring is a sorted hash ring: hashes[i] is owned by eps[owners[i]]. The two
// parallel slices keep the binary search on one dense []uint64.
type ring struct {
	hashes []uint64
	owners []uint32
}

type entry struct {
	hash  uint64
	owner uint32
}

// newRing builds the ring exactly as Envoy's RingHashLoadBalancer::Ring
// (source/extensions/load_balancing_policies/ring_hash/ring_hash_lb.cc), so
// that a key lands on the same address in Envoy and in shoal:
//
//   - weights are normalized to sum 1;
//   - scale = min(ceil(minNorm*minRingSize)/minNorm, maxRingSize), so the
//     lightest endpoint gets a whole number of entries;
//   - endpoints are visited in order, each adding entries "<address>_<i>"
//     hashed with xxHash64 (seed 0) while the running count is below the
//     running target sum(scale*norm);
//   - entries are sorted by hash.
//
// With HashesPerWeight set, the counts come from stableCounts instead.
func newRing(eps []*lb.Endpoint, cfg lb.RingHashConfig) ring {
	var counts []uint64
	if cfg.HashesPerWeight > 0 {
		counts = stableCounts(eps, cfg)
	} else {
		counts = envoyCounts(eps, cfg)
	}
	var total uint64
	for _, c := range counts {
		total += c
	}
	entries := make([]entry, 0, total)
	var key []byte
	for i, e := range eps {
		key = append(append(key[:0], e.Address...), '_')
		prefix := len(key)
		for n := range counts[i] {
			key = strconv.AppendUint(key[:prefix], n, 10)
			entries = append(entries, entry{hash: lb.HashBytes(key), owner: uint32(i)})
		}
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return cmp.Compare(a.hash, b.hash) })
	r := ring{hashes: make([]uint64, len(entries)), owners: make([]uint32, len(entries))}
	for i, en := range entries {
		r.hashes[i], r.owners[i] = en.hash, en.owner
	}
	return r
}

// envoyCounts returns the entries per endpoint as Envoy computes them, with
// running float sums so fractional shares round consistently.
func envoyCounts(eps []*lb.Endpoint, cfg lb.RingHashConfig) []uint64 {
	counts := make([]uint64, len(eps))
	if len(eps) == 0 {
		return counts
	}
	var sum float64
	for _, e := range eps {
		sum += float64(e.EffectiveWeight())
	}
	minNorm := 1.0
	for _, e := range eps {
		minNorm = min(minNorm, float64(e.EffectiveWeight())/sum)
	}
	scale := min(math.Ceil(minNorm*float64(cfg.MinRingSize))/minNorm, float64(cfg.MaxRingSize))
	var current, target float64
	for i, e := range eps {
		target += scale * float64(e.EffectiveWeight()) / sum
		for ; current < target; current++ {
			counts[i]++
		}
	}
	return counts
}

// stableCounts gives every endpoint HashesPerWeight×weight entries,
// independent of the other endpoints, scaled down only when the ring would
// exceed MaxRingSize.
func stableCounts(eps []*lb.Endpoint, cfg lb.RingHashConfig) []uint64 {
	counts := make([]uint64, len(eps))
	var total uint64
	for i, e := range eps {
		counts[i] = cfg.HashesPerWeight * uint64(e.EffectiveWeight())
		total += counts[i]
	}
	if total > cfg.MaxRingSize {
		for i := range counts {
			counts[i] = max(1, counts[i]*cfg.MaxRingSize/total)
		}
	}
	return counts
}

// search returns the index of the first entry whose hash is >= h, wrapping
// to 0 past the end (ketama_get_server as ported by Envoy).
func (r *ring) search(h uint64) int {
	lo, hi := 0, len(r.hashes)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r.hashes[mid] < h {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == len(r.hashes) {
		return 0
	}
	return lo
}
