package proxy

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// serveTCP proxies the client connection as raw bytes to an endpoint of a
// TCP cluster, retrying connect failures on other endpoints. Ring hash
// and Maglev clusters hash the client IP.
func (c *conn) serveTCP(b *binding, cl *route.Cluster) {
	cs, hosts := b.clusters[cl.Index], b.hosts[cl.Index]
	a := attempt{cl: cl, cs: cs, hosts: hosts}
	a.info.SetHash(lb.HashBytes(c.peerIP))
	var up *upConn
	var e *lb.Endpoint
	for range 1 + c.p.cfg.ConnectRetries {
		var h *host
		e, h = a.pick()
		if h == nil || a.triedHost(h) {
			break
		}
		a.markTried(h)
		h.countRequest(c.p.metrics)
		if !cs.roomForConn(cl.MaxConnections) {
			break // at the connection limit: refused like a failed connect
		}
		uc, err := c.p.dial(h, e, cl.ConnectTimeout, time.Time{})
		if err == nil {
			up = uc
			h.onSuccess()
			break
		}
		h.onFailure(&cl.Outlier, len(hosts))
	}
	if up == nil {
		cs.codes.inc(502)
		return
	}
	e.Begin()
	defer e.End()
	c.nc.SetReadDeadline(time.Time{})
	defer up.close() // counts it closed; pipe has closed it
	if pipe(c.nc, up.nc, c.p.cfg.TCPIdleTimeout) {
		c.p.metrics.tcpIdleTimeouts.Inc()
		c.p.log.Debug("tcp proxy connection idle: closed both sides", "cluster", cl.Name,
			"peer", c.nc.RemoteAddr().String(), "upstream", e.Address, "idle_timeout", c.p.cfg.TCPIdleTimeout)
	}
	cs.codes.inc(200)
}

// admitTCP decides whether an inbound TCP connection reaches the app: over
// mTLS it first completes the handshake (a zero-length read runs it, under
// ReadHeaderTimeout), then the service's authorization policy judges the
// caller (a TCP connection has no method or path: rules that name paths
// or methods never admit one). A denied caller's connection is closed, as
// Envoy's network RBAC filter does.
func (c *conn) admitTCP(b *binding, cl *route.Cluster) bool {
	if _, ok := c.nc.(PeerIdentity); ok {
		c.nc.SetReadDeadline(time.Now().Add(c.p.cfg.ReadHeaderTimeout))
		if _, err := c.nc.Read(nil); err != nil {
			return false
		}
	}
	if reason := inboundDenied(b.table, c.mode, c.callerID(), &route.Request{}); reason != "" {
		b.clusters[cl.Index].codes.inc(403)
		c.p.log.Debug("tcp connection denied", "peer", c.nc.RemoteAddr().String(), "reason", reason)
		return false
	}
	return true
}

// tcpCopyBuf is the size of each direction's copy buffer when the idle
// timeout is tracked.
const tcpCopyBuf = 16 << 10

// pipe copies both ways, half-closing each direction when its source ends,
// and returns when both directions are done. The upstream-to-client copy
// runs in a goroutine owned and joined by pipe. With idle > 0 both sides
// are closed once no byte moved either way for idle, and pipe reports
// whether that happened; otherwise io.Copy moves the bytes (spliced in
// the kernel on Linux) with no timeout.
func pipe(client, up net.Conn, idle time.Duration) (idled bool) {
	copyFn := func(dst, src net.Conn) error {
		_, err := io.Copy(dst, src)
		return err
	}
	if idle > 0 {
		w := newIdleWatch(idle, client, up)
		defer func() { idled = w.stop() }()
		copyFn = w.copy
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyFn(client, up)
		closeWrite(client)
	}()
	if err := copyFn(up, client); err != nil {
		up.Close()
		client.Close()
	}
	closeWrite(up)
	<-done
	up.Close()
	return false
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// idleWatch closes both sides of a proxied TCP connection once no byte
// has moved either way for timeout (Envoy's tcp_proxy idle_timeout). The
// copy loops note progress once per chunk; a timer looks at it once per
// timeout, so the data path sets no deadlines and a blocked write to a
// half-dead peer is cut off as well (closing unblocks it).
type idleWatch struct {
	timeout    time.Duration
	start      time.Time    // base of last, with its monotonic reading
	last       atomic.Int64 // when a byte last moved, as time since start
	client, up net.Conn

	// mu guards timer, stopped and idled: check re-arms the timer and
	// must not after stop.
	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
	idled   bool
}

func newIdleWatch(timeout time.Duration, client, up net.Conn) *idleWatch {
	w := &idleWatch{timeout: timeout, start: time.Now(), client: client, up: up}
	w.mu.Lock()
	w.timer = time.AfterFunc(timeout, w.check)
	w.mu.Unlock()
	return w
}

// copy copies src to dst until EOF or an error, noting progress.
func (w *idleWatch) copy(dst, src net.Conn) error {
	buf := make([]byte, tcpCopyBuf)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			w.touch()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
			w.touch()
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (w *idleWatch) touch() { w.last.Store(int64(time.Since(w.start))) }

// check runs on the timer: it closes both sides when the connection has
// been idle for timeout, or re-arms the timer for when it would be.
func (w *idleWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	idle := time.Since(w.start) - time.Duration(w.last.Load())
	if idle < w.timeout {
		w.timer.Reset(w.timeout - idle)
		return
	}
	w.idled = true
	w.client.Close()
	w.up.Close()
}

// stop ends the watch and reports whether it closed the connection.
func (w *idleWatch) stop() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	w.timer.Stop()
	return w.idled
}
