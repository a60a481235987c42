package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
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
	// stallAt is the read deadline of a running stall watch (zero: none),
	// until the attempt's own deadline it stands in for (see watchStall).
	stallAt, until time.Time
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

// setDeadline sets or clears the connection deadline, skipping the call
// when there is nothing to change (the common case without timeouts).
func (uc *upConn) setDeadline(t time.Time) {
	uc.streamIdle = 0
	if t.IsZero() && !uc.hasDeadline {
		return
	}
	uc.nc.SetDeadline(t)
	uc.hasDeadline = !t.IsZero()
	uc.rdl, uc.w.wd.at, uc.w.wd.limit = time.Time{}, t, t
}

// idleDeadline replaces an absolute deadline by the progress-based one of
// Config.StreamIdleTimeout (d; <= 0: none): reads fail after d without
// data, blocking writes after d without progress (the writer's
// writeDeadline, set up in newUpConn).
func (uc *upConn) idleDeadline(d time.Duration) {
	if uc.hasDeadline {
		uc.nc.SetDeadline(time.Time{})
		uc.hasDeadline = false
		uc.rdl, uc.w.wd.at, uc.w.wd.limit = time.Time{}, time.Time{}, time.Time{}
	}
	uc.streamIdle = d
	uc.armRead()
}

// armRead moves the idle read deadline forward, at most once a second.
func (uc *upConn) armRead() {
	if uc.streamIdle <= 0 || !uc.stallAt.IsZero() {
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
