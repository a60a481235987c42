package proxy

import (
	"errors"
	"net"
	"os"
	"time"
)

// writeDeadline makes the blocking writes to a client connection fail when
// no byte could be written for timeout (Config.WriteTimeout), the way
// nginx's send_timeout and x/net/http2's WriteByteTimeout do.
//
// It costs nothing on the common path: a write the socket takes at once
// (a raw write inside a read callback, see connWriter) never gets here.
// Only a write that must wait for room — the raw write got EAGAIN, or the
// connection is outside a callback — arms the deadline, and it moves the
// deadline forward only when it has gone stale by more than slack, so a
// stream of blocking writes costs a deadline update at most once a second
// (as armIdle does for reads; once per quarter timeout when that is
// shorter). A deadline is therefore never further than timeout, and never
// nearer than timeout-slack, from the start of a write.
//
// It is owned by the connection's goroutine; callers serialize writes.
type writeDeadline struct {
	timeout time.Duration // <= 0: none
	slack   time.Duration
	at      time.Time // the write deadline set on the connection; zero: none
	// limit (non-zero) is an absolute deadline the connection has (an
	// upstream's route timeout, see upConn.setDeadline): arm never sets
	// the write deadline past it.
	limit   time.Time
	expired bool // a write failed on the deadline
}

func newWriteDeadline(timeout time.Duration) writeDeadline {
	return writeDeadline{timeout: timeout, slack: min(time.Second, timeout/4)}
}

// write writes p to nc under the deadline. When the deadline passes after
// part of p was written the client is reading, slowly: the deadline moves
// on and the write goes on, so a write fails only after timeout (at most
// twice timeout for one large write) without progress.
func (wd *writeDeadline) write(nc net.Conn, p []byte) (int, error) {
	if wd.timeout <= 0 && wd.limit.IsZero() && wd.at.IsZero() {
		return nc.Write(p)
	}
	n := 0
	for {
		wd.arm(nc)
		m, err := nc.Write(p[n:])
		n += m
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if m == 0 {
			wd.expired = true
			return n, err
		}
	}
}

// arm moves the write deadline to timeout from now (capped at limit; with
// no timeout, limit or none) unless it is less than slack older than
// that. A deadline that has passed, or that comes after the one wanted
// (an upstream connection's earlier limit), is always replaced.
func (wd *writeDeadline) arm(nc net.Conn) {
	now := time.Now()
	var d time.Time
	if wd.timeout > 0 {
		d = now.Add(wd.timeout)
	}
	if !wd.limit.IsZero() && (d.IsZero() || d.After(wd.limit)) {
		d = wd.limit
	}
	switch {
	case d.Equal(wd.at):
		return
	case d.IsZero(), wd.at.IsZero(), d.Before(wd.at), !wd.at.After(now), d.Sub(wd.at) > wd.slack:
		nc.SetWriteDeadline(d)
		wd.at = d
	}
}
