package xdsserver

import (
	"sync"
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
// Once threshold bytes were pushed (64 MiB by default: an initial sync
// of 30 clients, or a few minutes of endpoint changes for 1,000), the
// burst is over when less than a quarter of threshold was pushed during a
// quiet period (one second). Under a steady stream of changes that means
// a collection per threshold bytes pushed, a small cost next to the
// pushes.
//
// Stream goroutines count pushed bytes with add; the Server's Run
// goroutine owns the rest: it waits on burst, calls start, then check
// every quiet period until check has started free (debug.FreeOSMemory: a
// collection, then every free page returned) on a goroutine of its own —
// the caller waits for the collection, which must not hold back updates —
// and calls wait before it returns.
type releaser struct {
	threshold int64
	quiet     time.Duration
	free      func()

	// freeing runs free; at most one at a time (busy).
	freeing sync.WaitGroup
	busy    atomic.Bool

	// pushed counts the bytes pushed since the last reset.
	pushed atomic.Int64
	// burst (capacity 1) is signalled when pushed reaches threshold.
	burst chan struct{}

	// last is pushed at the last check; owned by Run.
	last int64
}

func newReleaser(threshold int64, quiet time.Duration, free func()) *releaser {
	return &releaser{threshold: threshold, quiet: quiet, free: free, burst: make(chan struct{}, 1)}
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

// start is called by Run when burst was signalled; check must follow
// every quiet period.
func (r *releaser) start() { r.last = r.pushed.Load() }

// check starts freeing memory and returns true if the burst is over: less
// than a quarter of threshold pushed since the last check (or start).
func (r *releaser) check() bool {
	cur := r.pushed.Load()
	if cur-r.last >= r.threshold/4 {
		r.last = cur
		return false
	}
	if r.busy.CompareAndSwap(false, true) {
		r.freeing.Go(func() {
			defer r.busy.Store(false)
			r.free()
		})
	}
	r.pushed.Add(-cur)
	return true
}

// wait waits until free returned.
func (r *releaser) wait() { r.freeing.Wait() }
