package xds

import (
	"sync/atomic"
	"time"
)

// releaser returns the memory of a burst of pushes — clients connecting
// and syncing, a change of every route — to the operating system once the
// burst is over. Each client's first responses are encoded on their own,
// MiBs per client: the collector raises its heap goal to twice what was in
// flight at once, and with little allocated afterwards, an idle control
// plane keeps that garbage, then those pages, for minutes (the runtime
// collects every two minutes when idle and returns memory slowly). 1,000
// clients left about 1 GiB of RSS for a live heap under 100 MiB.
//
// Stream goroutines count pushed bytes with add; the Server's Run
// goroutine owns the rest: it waits on burst, then checks every quiet
// period whether the burst is over and, if so, calls free
// (debug.FreeOSMemory: a collection, then every free page returned).
type releaser struct {
	// threshold is how many bytes make a burst; quiet is how long pushes
	// must stay under trickle bytes for the burst to be over.
	threshold int64
	trickle   int64
	quiet     time.Duration
	free      func()

	// pushed counts the bytes pushed since the last release.
	pushed atomic.Int64
	// burst (capacity 1) is signalled when pushed reaches threshold.
	burst chan struct{}

	// last is pushed at the last check; owned by Run.
	last int64
}

func newReleaser(threshold int64, quiet time.Duration, free func()) *releaser {
	return &releaser{threshold: threshold, trickle: threshold / 64, quiet: quiet, free: free, burst: make(chan struct{}, 1)}
}

// add counts n pushed bytes. Safe for concurrent use; never blocks.
func (r *releaser) add(n int) {
	v := r.pushed.Add(int64(n))
	if v >= r.threshold && v-int64(n) < r.threshold {
		select {
		case r.burst <- struct{}{}:
		default:
		}
	}
}

// start begins watching for the end of a burst. Called by Run.
func (r *releaser) start() { r.last = r.pushed.Load() }

// check frees memory and returns true if less than trickle bytes were
// pushed since the last check (or start). Called by Run every quiet period
// while a burst lasts.
func (r *releaser) check() bool {
	cur := r.pushed.Load()
	if cur-r.last >= r.trickle {
		r.last = cur
		return false
	}
	r.free()
	r.pushed.Add(-cur)
	return true
}
