package gossip

import (
	"context"
	"math/rand/v2"
	"slices"
	"time"
)

// randIntN picks the seed to re-join when every seed looks alive.
var randIntN = rand.IntN

// run is the member's background goroutine: it expires stale suspicions
// and forgotten members every probe interval and re-joins seeds every
// RejoinInterval. It exits when ctx ends (Close).
func (m *Member) run() {
	defer m.wg.Done()
	expire := time.NewTicker(m.cfg.Timing.ProbeInterval)
	defer expire.Stop()
	var rejoin <-chan time.Time
	if m.cfg.RejoinInterval > 0 && (len(m.cfg.Seeds) > 0 || m.cfg.SeedSource != nil) {
		t := time.NewTicker(m.cfg.RejoinInterval)
		defer t.Stop()
		rejoin = t.C
	}
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-expire.C:
			if nudge := m.view.expire(m.nudgeAfter()); len(nudge) > 0 {
				select {
				case m.nudgeCh <- nudge:
				default: // the worker is busy; these are retried after nudgeAfter
				}
			}
		case <-rejoin:
			m.rejoin(m.ctx)
		}
	}
}

// rejoin joins every seed that is not an alive member of this member's
// view, or one random seed when all are. Partitioned halves of a memberlist
// cluster declare each other dead and may never talk again on their own
// (hashicorp/memberlist#222); a join (a TCP push/pull) with a seed on the
// other side re-merges them. The join with a seed that looks alive covers
// the lopsided heal: after a partition the seed may have refuted and look
// alive to us while it still holds us dead; only a push/pull tells us, and
// memberlist's own runs every PushPullInterval (15 s), so this bounds
// re-merge by RejoinInterval instead.
func (m *Member) rejoin(ctx context.Context) {
	seeds := slices.Clone(m.cfg.Seeds)
	if m.cfg.SeedSource != nil {
		sctx, cancel := context.WithTimeout(ctx, m.cfg.Timing.TCPTimeout)
		more, err := m.cfg.SeedSource(sctx)
		cancel()
		if err != nil {
			m.log.Warn("gossip: seed source", "err", err)
		}
		seeds = append(seeds, more...)
	}
	alive := map[string]bool{m.Addr(): true}
	for _, p := range m.view.snapshot() {
		if p.State == MemberAlive || p.State == MemberSuspect {
			alive[p.Addr] = true
		}
	}
	seeds = slices.DeleteFunc(seeds, func(s string) bool { return s == "" || s == m.Addr() })
	slices.Sort(seeds)
	seeds = slices.Compact(seeds)
	if len(seeds) == 0 || ctx.Err() != nil {
		return
	}
	if missing := slices.DeleteFunc(slices.Clone(seeds), func(s string) bool { return alive[s] }); len(missing) > 0 {
		seeds = missing
	} else {
		seeds = seeds[randIntN(len(seeds)):][:1]
	}
	n, err := m.ml.Join(seeds)
	switch {
	case n > 0:
		m.met.rejoins.WithLabelValues("joined").Inc()
		m.log.Debug("gossip: re-joined seeds", "seeds", seeds, "answered", n)
	case err != nil:
		m.met.rejoins.WithLabelValues("failed").Inc()
		m.log.Debug("gossip: re-join failed", "seeds", seeds, "err", err)
	}
}
