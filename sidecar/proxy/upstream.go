package proxy

import (
	"bufio"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/lb"
)

// Upstream connection buffer sizes.
const (
	upstreamReadBuf  = 8 << 10
	upstreamWriteBuf = 4 << 10
)

// upConn is one HTTP/1.1 connection to an upstream endpoint. It is owned by
// one request at a time: taken from the pool, returned when reusable.
type upConn struct {
	nc          net.Conn
	br          bufReader
	bw          *bufio.Writer
	h           *host
	idleSince   time.Time
	hasDeadline bool // an absolute deadline (setDeadline) is set
	// streamIdle (> 0) makes reads progress-based (idleDeadline): a read
	// deadline streamIdle ahead, moved at most once a second so that a
	// busy connection costs no deadline update per request.
	streamIdle time.Duration
	rdl        time.Time // the read deadline streamIdle armed; zero: none

	// flushAndFill's state: the raw connection (nil: plain reads), its
	// callback bound once, and the outcome of one exchange.
	rc         syscall.RawConn
	w          *connWriter // under bw
	readable   func(fd uintptr) bool
	sent       bool
	reused     bool // taken from the pool: check it is quiet before sending
	early      bool // part of the request was written before flushAndFill
	werr, rerr error
}

// setDeadline sets or clears the connection deadline, skipping the call
// when there is nothing to change (the common case without timeouts).
func (uc *upConn) setDeadline(t time.Time) {
	uc.streamIdle = 0
	if t.IsZero() && !uc.hasDeadline {
		return
	}
	uc.nc.SetDeadline(t)
	uc.hasDeadline = !t.IsZero()
	uc.rdl, uc.w.wd.at = time.Time{}, t
}

// idleDeadline replaces an absolute deadline by the progress-based one of
// Config.StreamIdleTimeout (d; <= 0: none): reads fail after d without
// data, blocking writes after d without progress (the writer's
// writeDeadline, set up in newUpConn).
func (uc *upConn) idleDeadline(d time.Duration) {
	if uc.hasDeadline {
		uc.nc.SetDeadline(time.Time{})
		uc.hasDeadline = false
		uc.rdl, uc.w.wd.at = time.Time{}, time.Time{}
	}
	uc.streamIdle = d
	uc.armRead()
}

// armRead moves the idle read deadline forward, at most once a second.
func (uc *upConn) armRead() {
	if uc.streamIdle <= 0 {
		return
	}
	if d := time.Now().Add(uc.streamIdle); d.Sub(uc.rdl) > time.Second {
		uc.nc.SetReadDeadline(d)
		uc.rdl = d
	}
}

// Read reads from the upstream connection, under the stream idle timeout
// when one is armed (see idleDeadline).
func (uc *upConn) Read(p []byte) (int, error) {
	uc.armRead()
	return uc.nc.Read(p)
}

func (uc *upConn) close() { uc.nc.Close() }

// pool is a LIFO stack of idle keep-alive connections to one host. LIFO
// keeps the hottest connections busy and lets the coldest idle out.
// Safe for concurrent use.
type pool struct {
	// mu guards idle and closed.
	mu     sync.Mutex
	idle   []*upConn
	closed bool
}

// get pops the most recently used idle connection younger than maxIdle.
// Older ones are closed: a Node.js server closes idle keep-alive
// connections after 5 s, and reusing one risks a reset. One the upstream
// has already closed (peerClosed: a crashed app) is closed and skipped
// when check is set (see conn.redoableOnStale).
func (p *pool) get(now time.Time, maxIdle time.Duration, check bool) *upConn {
	p.mu.Lock()
	n := len(p.idle)
	if n == 0 {
		p.mu.Unlock()
		return nil
	}
	uc := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	if now.Sub(uc.idleSince) < maxIdle {
		p.mu.Unlock()
		if check && uc.peerClosed() {
			uc.close()
			return p.get(now, maxIdle, check)
		}
		return uc
	}
	stale := p.idle
	p.idle = nil
	p.mu.Unlock()
	uc.close()
	for _, c := range stale {
		c.close()
	}
	return nil
}

// put returns a reusable connection; it is closed when the pool is full
// or closed.
func (p *pool) put(uc *upConn, now time.Time, maxConns int) {
	uc.idleSince = now
	p.mu.Lock()
	if p.closed || len(p.idle) >= maxConns {
		p.mu.Unlock()
		uc.close()
		return
	}
	p.idle = append(p.idle, uc)
	p.mu.Unlock()
}

// closeAll closes the idle connections; the pool stays usable.
func (p *pool) closeAll() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, uc := range idle {
		uc.close()
	}
}

// shutdown closes the idle connections and refuses later puts.
func (p *pool) shutdown() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.closeAll()
}

// dial opens a new connection to e, counting it as a pending connect for
// least request. deadline (if set) caps timeout.
func (p *Proxy) dial(h *host, e *lb.Endpoint, timeout time.Duration, deadline time.Time) (*upConn, error) {
	if !deadline.IsZero() {
		timeout = min(timeout, time.Until(deadline))
	}
	e.BeginConnect()
	nc, err := net.DialTimeout("tcp", h.addr, timeout)
	e.EndConnect()
	if err != nil {
		return nil, err
	}
	return newUpConn(nc, h, p.cfg.StreamIdleTimeout), nil
}

// newUpConn wraps a connection to h's endpoint; a blocking write fails
// after streamIdle (<= 0: never) without progress.
func newUpConn(nc net.Conn, h *host, streamIdle time.Duration) *upConn {
	uc := &upConn{nc: nc, w: newConnWriter(nc, streamIdle), h: h, rc: rawConn(nc)}
	uc.bw = bufio.NewWriterSize(uc.w, upstreamWriteBuf)
	uc.br = bufReader{rd: uc, buf: make([]byte, upstreamReadBuf)}
	uc.readable = uc.onReadable
	return uc
}
