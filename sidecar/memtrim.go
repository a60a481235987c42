package sidecar

import (
	"runtime/debug"
	"sync"
	"time"
)

// Decoding and compiling a configuration update allocates several times
// the size of the table it yields, and Go's scavenger keeps most of that
// heap once it is free: with 1,000 endpoints about 1 MiB of a sidecar's
// ~6 MiB of anonymous memory was idle heap never given back. After an
// update settles, memTrimmer returns it (debug.FreeOSMemory: one GC of a
// heap of a few MiB, which the request path, allocating nothing, does not
// otherwise need), at most once per trimEvery.
const (
	trimDelay = time.Second      // after an update, so a burst of them trims once
	trimEvery = 10 * time.Second // at most one trim this often under churn
)

// memTrimmer debounces trims. Its methods are safe for concurrent use.
type memTrimmer struct {
	free         func()
	delay, every time.Duration

	// mu guards the rest.
	mu      sync.Mutex
	timer   *time.Timer // pending trim, nil when none
	last    time.Time
	stopped bool
}

func newMemTrimmer() *memTrimmer {
	return &memTrimmer{free: debug.FreeOSMemory, delay: trimDelay, every: trimEvery}
}

// request schedules a trim unless one is pending; it never blocks.
func (t *memTrimmer) request() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped || t.timer != nil {
		return
	}
	d := max(t.delay, time.Until(t.last.Add(t.every)))
	t.timer = time.AfterFunc(d, t.fire)
}

func (t *memTrimmer) fire() {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	t.timer, t.last = nil, time.Now()
	t.mu.Unlock()
	t.free()
}

// stop cancels a pending trim; later requests are ignored.
func (t *memTrimmer) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	if t.timer != nil {
		t.timer.Stop()
	}
}
