package roundrobin

import "math"

// Bounds on the precomputed schedule. One period of smooth weighted round
// robin has sum(weights)/gcd entries; when that exceeds maxPeriod (or the
// build work period×distinctWeights exceeds maxWork), weights are scaled down
// proportionally (each kept >= 1), trading at most ~1/(scaled weight) of
// precision for a bounded table (<= 256 KiB) and a bounded build time.
const (
	maxPeriod = 1 << 16
	maxWork   = 1 << 24
)

// schedule returns one period of nginx's smooth weighted round robin over
// weights (ngx_http_upstream_get_peer): every step each peer's current
// weight grows by its weight, the largest (first on ties) is chosen and
// loses the total. After s steps peer i's current weight is
// s*w_i - total*k_i (k_i = times chosen), so peers of equal weight are chosen
// in index order and one candidate per distinct weight is enough: the cost
// is O(period × distinct weights) instead of O(period × peers).
func schedule(weights []uint32) []uint32 {
	ws := reduce(weights)
	groups, total := group(ws)
	out := make([]uint32, 0, total)
	for s := int64(1); s <= total; s++ {
		best := -1
		var bestKey int64
		for g := range groups {
			key := s*groups[g].weight - total*groups[g].rounds
			if best < 0 || key > bestKey || (key == bestKey && groups[g].candidate() < groups[best].candidate()) {
				best, bestKey = g, key
			}
		}
		out = append(out, groups[best].advance())
	}
	return out
}

// weightGroup is the peers sharing one weight, in index order. Peers before
// pos have been chosen rounds+1 times, the others rounds times.
type weightGroup struct {
	weight  int64
	members []uint32
	pos     int
	rounds  int64
}

func (g *weightGroup) candidate() uint32 { return g.members[g.pos] }

func (g *weightGroup) advance() uint32 {
	c := g.members[g.pos]
	g.pos++
	if g.pos == len(g.members) {
		g.pos, g.rounds = 0, g.rounds+1
	}
	return c
}

func group(ws []int64) ([]weightGroup, int64) {
	var groups []weightGroup
	byWeight := make(map[int64]int)
	var total int64
	for i, w := range ws {
		total += w
		g, ok := byWeight[w]
		if !ok {
			g = len(groups)
			byWeight[w] = g
			groups = append(groups, weightGroup{weight: w})
		}
		groups[g].members = append(groups[g].members, uint32(i))
	}
	return groups, total
}

// reduce divides weights by their gcd and, if the period is still too long,
// scales them down to fit maxPeriod and maxWork.
func reduce(weights []uint32) []int64 {
	var g, total uint64
	distinct := make(map[uint32]struct{})
	for _, w := range weights {
		g = gcd(g, uint64(w))
		distinct[w] = struct{}{}
	}
	ws := make([]int64, len(weights))
	for i, w := range weights {
		ws[i] = int64(uint64(w) / g)
		total += uint64(ws[i])
	}
	limit := max(uint64(len(weights)), min(maxPeriod, maxWork/uint64(len(distinct))))
	if total <= limit {
		return ws
	}
	scale := float64(limit) / float64(total)
	for i := range ws {
		ws[i] = max(1, int64(math.Round(float64(ws[i])*scale)))
	}
	return ws
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
