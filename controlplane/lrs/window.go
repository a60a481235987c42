package lrs

import (
	"time"
)

// counts are the additive figures of one report for one key.
type counts struct {
	issued, success, errors uint64
	// latencyMS and latencyN are the sum of request latencies in
	// milliseconds and how many requests it covers.
	latencyMS float64
	latencyN  uint64
}

func (c *counts) add(o counts) {
	c.issued += o.issued
	c.success += o.success
	c.errors += o.errors
	c.latencyMS += o.latencyMS
	c.latencyN += o.latencyN
}

type sample struct {
	at time.Time
	counts
}

// series is the samples of one key within the window, oldest first, and
// the last reported number of requests in progress per reporting node
// (a gauge, not additive over time), keyed by whatever the caller reports
// it per.
type series struct {
	samples    []sample
	inProgress map[string]uint64
	lastSeen   time.Time
}

func newSeries() *series { return &series{inProgress: map[string]uint64{}} }

func (s *series) add(now time.Time, node string, c counts, inProgress uint64) {
	s.samples = append(s.samples, sample{at: now, counts: c})
	s.inProgress[node] = inProgress
	s.lastSeen = now
}

// prune drops samples older than since; it reports whether the series is
// empty and can be forgotten.
func (s *series) prune(since time.Time) bool {
	i := 0
	for i < len(s.samples) && s.samples[i].at.Before(since) {
		i++
	}
	if i > 0 {
		s.samples = append(s.samples[:0], s.samples[i:]...)
	}
	return len(s.samples) == 0 && s.lastSeen.Before(since)
}

func (s *series) sum() counts {
	var c counts
	for _, smp := range s.samples {
		c.add(smp.counts)
	}
	return c
}

func (s *series) inFlight() uint64 {
	var n uint64
	for _, v := range s.inProgress {
		n += v
	}
	return n
}
