package xdsclient

import "time"

// timer is a one-shot timer whose channel is nil while disarmed, for use
// in select loops. It is owned by one goroutine.
type timer struct {
	t *time.Timer
}

// C returns the timer's channel, nil (never ready) while disarmed.
func (t *timer) C() <-chan time.Time {
	if t.t == nil {
		return nil
	}
	return t.t.C
}

// armed reports whether the timer is running or fired and not yet handled.
func (t *timer) armed() bool { return t.t != nil }

// arm starts the timer unless it is already armed.
func (t *timer) arm(d time.Duration) {
	if t.t == nil {
		t.t = time.NewTimer(d)
	}
}

// stop disarms the timer. Call it after receiving from C, or to cancel.
func (t *timer) stop() {
	if t.t != nil {
		t.t.Stop()
		t.t = nil
	}
}
