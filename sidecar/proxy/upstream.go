package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
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
	nc        net.Conn
	br        bufReader
	bw        *bufio.Writer
	h         *host
	idleSince time.Time
	// The read deadline is armed lazily: rdl (zero: none) is the one set
	// on the connection, which may come before the read's due (readDue)
	// but never after it. A deadline that passes early is moved on and
	// the read goes on (see armRead), so that a busy connection costs no
	// deadline update per request: one armed for an earlier request is
	// still ahead and still early enough.
	//
	// until (zero: none) is an absolute deadline for reads and writes (an
	// attempt's route and per-try timeouts, setDeadline); streamIdle (> 0)
	// makes them progress-based instead (idleDeadline): a read fails after
	// streamIdle without data, a blocking write after streamIdle without
	// progress (the writer's writeDeadline).
	until      time.Time
	streamIdle time.Duration
	rdl        time.Time
	// stallAt is the time of a running stall watch's next check (zero:
	// none), a read deadline of its own (see watchStall).
	stallAt time.Time
	// quick counts the early checks left of a watch that may hedge
	// (attempt.mayHedge); zero: none.
	quick int

	// flushAndFill's state: the raw connection (nil: plain reads), its
	// callback bound once, and the outcome of one exchange. Over mTLS, rc
	// is the TCP connection's and ts the socket under the *tls.Conn nc,
	// which the callback switches to raw system calls (see tlsSock).
	rc         syscall.RawConn
	ts         *tlsSock
	w          *connWriter // under bw
	readable   func(fd uintptr) bool
	sent       bool
	reused     bool // taken from the pool: check it is quiet before sending
	early      bool // part of the request was written before flushAndFill
	werr, rerr error
	closed     atomic.Bool // close was called (the cluster's conns count)
}

// setDeadline makes t (zero: none) the deadline of the connection's
// reads and writes. It costs no system call or timer update: reads arm
// their deadline lazily (armRead), blocking writes theirs (writeDeadline).
func (uc *upConn) setDeadline(t time.Time) {
	uc.until, uc.streamIdle = t, 0
	uc.w.wd.limit = t
}

// idleDeadline replaces an absolute deadline by the progress-based one of
// Config.StreamIdleTimeout (d; <= 0: none): reads fail after d without
// data, blocking writes after d without progress (the writer's
// writeDeadline, set up in newUpConn).
func (uc *upConn) idleDeadline(d time.Duration) {
	uc.until, uc.streamIdle = time.Time{}, d
	uc.w.wd.limit = time.Time{}
}

// readDue is when a read that starts (or last made progress) at from must
// fail: the earliest of until, from+streamIdle and stallAt; zero: never.
func (uc *upConn) readDue(from time.Time) time.Time {
	due := uc.until
	if uc.streamIdle > 0 {
		due = earliest(due, from.Add(uc.streamIdle))
	}
	return earliest(due, uc.stallAt)
}

// earliest returns the earlier of a and b, where zero means none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// armRead makes the read deadline pass no later than due (zero: never)
// for a read starting at now. A deadline still ahead and not after due is
// kept: it may pass before due, and the read then re-arms and goes on.
func (uc *upConn) armRead(now, due time.Time) {
	switch {
	case due.IsZero():
		if uc.rdl.IsZero() || uc.rdl.After(now) {
			return // none, or one that passes early at most once
		}
	case !uc.rdl.IsZero() && !uc.rdl.After(due) && uc.rdl.After(now):
		return
	}
	uc.nc.SetReadDeadline(due)
	uc.rdl = due
}

// Read reads from the upstream connection under its read deadline
// (readDue from the start of the call).
func (uc *upConn) Read(p []byte) (int, error) {
	now := time.Now()
	due := uc.readDue(now)
	uc.armRead(now, due)
	for {
		n, err := uc.nc.Read(p)
		if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if now = time.Now(); !due.IsZero() && !now.Before(due) {
			return n, err
		}
		uc.armRead(now, due) // an earlier deadline passed
	}
}

// close closes the connection; only the first call counts it closed in
// its cluster (roomForConn).
func (uc *upConn) close() {
	if uc.closed.CompareAndSwap(false, true) && uc.h != nil {
		uc.h.cluster.conns.Add(-1)
	}
	uc.nc.Close()
}

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
	nc, err := p.dialConn(h, timeout)
	e.EndConnect()
	if err != nil {
		return nil, err
	}
	uc := newUpConn(nc, h, p.cfg.StreamIdleTimeout)
	uc.opened()
	return uc, nil
}

// dialConn connects to h, over mTLS when the endpoint requires it (the
// handshake is part of the connect: its failure is a connect failure).
func (p *Proxy) dialConn(h *host, timeout time.Duration) (net.Conn, error) {
	var serverID string
	if id := h.serverID.Load(); id != nil {
		serverID = *id
	}
	start := time.Now()
	nc, err := net.DialTimeout("tcp", h.addr, timeout)
	if err != nil || serverID == "" {
		return nc, err
	}
	if p.cfg.UpstreamTLS == nil {
		nc.Close()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errNoIdentity}
	}
	tc := tls.Client(newTLSSock(nc), p.cfg.UpstreamTLS.ClientConfig(serverID))
	ctx, cancel := context.WithTimeout(context.Background(), timeout-time.Since(start))
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		p.CountTLSHandshake("upstream", err)
		nc.Close()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf("mTLS to %s: %w", serverID, err)}
	}
	p.CountTLSHandshake("upstream", nil)
	return tc, nil
}

// errNoIdentity is the connect error to an mTLS endpoint when this proxy
// has no identity to present.
var errNoIdentity = errors.New("the endpoint requires mTLS and this proxy has no identity (--join-token-file)")

// newUpConn wraps a connection to h's endpoint; a blocking write fails
// after streamIdle (<= 0: never) without progress.
func newUpConn(nc net.Conn, h *host, streamIdle time.Duration) *upConn {
	uc := &upConn{nc: nc, w: newConnWriter(nc, streamIdle), h: h, rc: rawConn(nc)}
	if tc, ok := nc.(*tls.Conn); ok {
		if ts, ok := tc.NetConn().(*tlsSock); ok {
			uc.ts, uc.rc = ts, rawConn(ts.Conn)
		}
	}
	uc.bw = bufio.NewWriterSize(uc.w, upstreamWriteBuf)
	uc.br = bufReader{rd: uc, buf: make([]byte, upstreamReadBuf)}
	uc.readable = uc.onReadable
	return uc
}

// CountTLSHandshake counts an mTLS handshake in
// shoal_sidecar_tls_handshakes_total; direction is "inbound" or
// "upstream". Safe for concurrent use.
func (p *Proxy) CountTLSHandshake(direction string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	p.metrics.handshakes.WithLabelValues(direction, result).Inc()
}

// dialTransport dials addr for the HTTP/2 path's transports, over mTLS
// when addr is an endpoint that requires it (offering ALPN alpn).
func (p *Proxy) dialTransport(ctx context.Context, d *net.Dialer, network, addr, alpn string) (net.Conn, error) {
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	m := p.tlsAddrs.Load()
	if m == nil || (*m)[addr] == "" {
		return nc, nil
	}
	if p.cfg.UpstreamTLS == nil {
		nc.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Err: errNoIdentity}
	}
	cfg := p.cfg.UpstreamTLS.ClientConfig((*m)[addr]).Clone()
	cfg.NextProtos = []string{alpn}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		p.CountTLSHandshake("upstream", err)
		nc.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("mTLS to %s: %w", (*m)[addr], err)}
	}
	p.CountTLSHandshake("upstream", nil)
	return tc, nil
}

// dialH2 opens a connection for an upstream HTTP/2 pool (h2c prior
// knowledge). It is the one place those connections are made: a TLS
// dialer (ALPN h2) replaces it.
func (p *Proxy) dialH2(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return p.dialTransport(ctx, &d, "tcp", addr, "h2")
}
