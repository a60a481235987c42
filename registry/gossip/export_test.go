package gossip

import "time"

// BlackholeForTest drops all of m's gossip traffic, both ways, for d (a
// stand-in for a paused or partitioned process); d <= 0 ends it.
func (m *Member) BlackholeForTest(d time.Duration) { m.tr.blackhole(d) }
