package sidecar

import (
	"sync/atomic"
	"testing"
	"time"
)

// A burst of configuration updates trims once, and a trim waits for the
// previous one to be `every` old.
func TestMemTrimmerDebounces(t *testing.T) {
	var trims atomic.Int32
	tr := &memTrimmer{free: func() { trims.Add(1) }, delay: time.Millisecond, every: time.Hour}
	defer tr.stop()
	for range 10 {
		tr.request()
	}
	deadline := time.Now().Add(10 * time.Second)
	for trims.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // poll interval of a loop with a deadline
	}
	if got := trims.Load(); got != 1 {
		t.Fatalf("trims after a burst = %d, want 1", got)
	}
	tr.request() // within `every` of the last trim: scheduled an hour out
	tr.mu.Lock()
	pending := tr.timer != nil
	tr.mu.Unlock()
	if !pending || trims.Load() != 1 {
		t.Errorf("a request right after a trim: pending %v, trims %d; want a pending trim, still 1", pending, trims.Load())
	}
	tr.stop()
	tr.request()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.timer != nil && tr.timer.Stop() {
		t.Error("a request after stop scheduled a trim")
	}
}
