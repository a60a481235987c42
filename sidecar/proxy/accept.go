package proxy

import (
	"errors"
	"net"
	"time"
)

// Accept backoff, as net/http's Server.Serve: a failed Accept (EMFILE or
// ENFILE when descriptors run out, ENOBUFS, ECONNABORTED...) is retried
// after 5 ms, doubling up to 1 s, so that a burst of connections that
// exhausts the descriptor limit slows the listener down instead of ending
// the process; nginx logs and keeps serving the same way.
const (
	acceptMinDelay = 5 * time.Millisecond
	acceptMaxDelay = time.Second
	// acceptLogEvery rate-limits the log line: one per interval, with the
	// number of failures since the last one.
	acceptLogEvery = 10 * time.Second
)

// acceptBackoff is the retry state of one Serve loop.
type acceptBackoff struct {
	delay      time.Duration
	lastLog    time.Time
	suppressed int
}

// retry records a failed Accept, counts and (rate-limited) logs it, and
// waits before the next one. It reports false when err is final: the
// listener is closed.
func (p *Proxy) retryAccept(b *acceptBackoff, l net.Listener, err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true // a deadline set on the listener: not a failure
	}
	p.metrics.acceptErrors.Inc()
	b.delay = min(max(2*b.delay, acceptMinDelay), acceptMaxDelay)
	if now := time.Now(); now.Sub(b.lastLog) >= acceptLogEvery {
		p.log.Warn("accept failed; retrying", "listener", l.Addr().String(), "error", err,
			"retry_in", b.delay, "failures_not_logged", b.suppressed)
		b.lastLog, b.suppressed = now, 0
	} else {
		b.suppressed++
	}
	time.Sleep(b.delay)
	return true
}
