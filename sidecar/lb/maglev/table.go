package maglev

import (
	"github.com/cespare/xxhash/v2"

	"github.com/shoal-mesh/shoal/sidecar/lb"
)

// buildEntry is one endpoint's state while filling the table.
type buildEntry struct {
	offset, skip, next uint64
	weight, target     float64
}

// newTable fills a Maglev lookup table (Eisenbud et al., NSDI 2016,
// "Maglev: A Fast and Reliable Software Network Load Balancer", §3.4) the
// way Envoy's MaglevTable does (source/extensions/load_balancing_policies/
// maglev/maglev_lb.cc), so keys map to the same address as in Envoy:
//
//   - offset = xxHash64(address, seed 0) % M, skip = xxHash64(address,
//     seed 1) % (M-1) + 1; the endpoint's preference list is
//     (offset + skip·next) % M;
//   - endpoints take turns claiming their next free preferred slot; an
//     endpoint of normalized weight w takes a turn only when iteration·w has
//     reached its target, which grows by the largest normalized weight per
//     turn, so it claims slots in proportion to its weight.
//
// table[slot] is an index into eps. size must be a prime.
func newTable(eps []*lb.Endpoint, size uint64) []uint32 {
	if len(eps) == 0 {
		return nil
	}
	entries, maxWeight := buildEntries(eps, size)
	const empty = ^uint32(0)
	table := make([]uint32, size)
	for i := range table {
		table[i] = empty
	}
	filled := uint64(0)
	for iteration := 1.0; filled < size; iteration++ {
		for i := 0; i < len(entries) && filled < size; i++ {
			e := &entries[i]
			if iteration*e.weight < e.target {
				continue
			}
			e.target += maxWeight
			c := (e.offset + e.skip*e.next) % size
			for table[c] != empty {
				e.next++
				c = (e.offset + e.skip*e.next) % size
			}
			table[c] = uint32(i)
			e.next++
			filled++
		}
	}
	return table
}

func buildEntries(eps []*lb.Endpoint, size uint64) ([]buildEntry, float64) {
	var sum float64
	for _, e := range eps {
		sum += float64(e.EffectiveWeight())
	}
	entries := make([]buildEntry, len(eps))
	var maxWeight float64
	seeded := xxhash.NewWithSeed(1)
	for i, e := range eps {
		seeded.ResetWithSeed(1)
		_, _ = seeded.WriteString(e.Address) // never fails
		w := float64(e.EffectiveWeight()) / sum
		entries[i] = buildEntry{
			offset: xxhash.Sum64String(e.Address) % size,
			skip:   seeded.Sum64()%(size-1) + 1,
			weight: w,
		}
		maxWeight = max(maxWeight, w)
	}
	return entries, maxWeight
}
