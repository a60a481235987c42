package proxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/accesslog"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// Client connection buffer sizes.
const (
	clientReadBuf  = 8 << 10
	clientWriteBuf = 4 << 10
)

// Lingering close after a rejected request.
const (
	lingerTimeout  = 250 * time.Millisecond
	lingerMaxBytes = 256 << 10
)

// Connection states for graceful shutdown.
const (
	stateIdle int32 = iota // between requests: Shutdown may close it
	stateActive
	stateClosing
)

// conn serves one client connection. It is owned by its goroutine (serve);
// only state and nc are touched by Shutdown.
type conn struct {
	p     *Proxy
	nc    net.Conn
	mode  Mode
	state atomic.Int32

	br     bufReader
	bw     *bufio.Writer
	req    request
	resp   response
	view   route.Request
	out    []byte // the upstream request head, built once per request
	replay []byte // the request body when buffered for retries
	peerIP []byte
	fixed  []byte // Mode.Cluster as a host, for Fixed listeners
	// trusted: the peer's X-Forwarded-* are kept (Mode.trustsForwarded).
	trusted bool

	rdl          time.Time // current read deadline
	inHead       bool      // ReadHeaderTimeout is armed
	bodyConsumed bool      // body bytes left the client buffer
	bodyDone     bool      // the request body was read completely
	linger       bool      // close with lingerClose: unread client input may follow
	attempt      attempt
	// end is the request's end when try read the clock right after the
	// response went out (zero: handle reads it), and idle the upstream
	// connection relay found reusable, which try pools at that time: a
	// clock read costs about 50 ns on a VM.
	end  time.Time
	idle *upConn
	// al is what the access log needs beyond the request: reset per
	// request by handle.
	al accessInfo
	// span is the request's place in its trace when Config.Tracer is set.
	span spanInfo

	// serveRaw's state (rawio_unix.go): the raw connection (nil: blocking
	// reads only), its callback bound once, and the step it leaves with.
	rc syscall.RawConn
	w  *connWriter // under bw
	// Over TLS (RawTLSConn): tlsRT until its handshake is done, then the
	// *tls.Conn and the socket under it (rc is the socket's).
	tlsRT    RawTLSConn
	tc       *tls.Conn
	ts       *tlsSock
	readable func(fd uintptr) bool
	inRaw    bool
	rawFirst bool
	escaped  bool // handle left the request to the blocking path
	rawStep  rawStep
	rawErr   error
	rawHerr  *httpError

	// bufs are the pooled buffers above (see release); pinned keeps them
	// out of the pool.
	bufs   *connBufs
	pinned bool
}

// connBufs are a client connection's buffers (about 16 KiB), pooled:
// clients that open a connection per request (no keep-alive, health
// checkers) would otherwise cost the sidecar that much garbage each.
type connBufs struct {
	rbuf   []byte
	w      *connWriter
	bw     *bufio.Writer
	reqH   []route.HeaderField
	respH  []route.HeaderField
	out    []byte
	peerIP []byte
	fixed  []byte
}

// maxPooledOut bounds the upstream head buffer kept in the pool.
const maxPooledOut = 8 << 10

var connBufPool = sync.Pool{New: func() any {
	w := &connWriter{}
	return &connBufs{
		rbuf: make([]byte, clientReadBuf),
		w:    w,
		bw:   bufio.NewWriterSize(w, clientWriteBuf),
		reqH: make([]route.HeaderField, 0, 32), respH: make([]route.HeaderField, 0, 32),
		out: make([]byte, 0, 1024),
	}
}}

func (p *Proxy) newConn(nc net.Conn, mode Mode) *conn {
	bufs := connBufPool.Get().(*connBufs)
	c := &conn{p: p, nc: nc, mode: mode, bufs: bufs}
	c.fixed = append(bufs.fixed[:0], mode.Cluster...)
	c.peerIP = bufs.peerIP[:0]
	var peer netip.Addr
	if ap, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ap.IP); ok {
			peer = a.Unmap()
			c.peerIP = peer.AppendTo(c.peerIP)
		} else {
			c.peerIP = append(c.peerIP, ap.IP.String()...)
		}
	}
	c.trusted = mode.trustsForwarded(p.bound.Load(), peer)
	if _, mtls := nc.(PeerIdentity); mtls && mode.Kind == Inbound {
		c.trusted = true // the mTLS inbound listener admits mesh peers only
	}
	c.br = bufReader{rd: c, buf: bufs.rbuf}
	c.w = bufs.w
	c.w.reset(nc, p.cfg.WriteTimeout)
	c.bw = bufs.bw
	c.bw.Reset(c.w)
	c.req.headers = bufs.reqH[:0]
	c.resp.headers = bufs.respH[:0]
	c.out = bufs.out[:0]
	c.rc = rawConn(nc)
	if rt, ok := nc.(RawTLSConn); ok && c.rc == nil {
		c.tlsRT = rt
	}
	c.readable = c.onClientReadable
	return c
}

// rawTLS switches a TLS client connection to the raw path once its
// handshake is done (the first request is read by the blocking path,
// which runs the handshake).
func (c *conn) rawTLS() {
	tc := c.tlsRT.RawTLS()
	if tc == nil {
		return
	}
	c.tlsRT = nil
	if ts, ok := tc.NetConn().(*tlsSock); ok {
		if rc := rawConn(ts.Conn); rc != nil {
			c.tc, c.ts, c.rc = tc, ts, rc
		}
	}
}

// release returns the connection's buffers to the pool when serve is done
// with them. A connection handed to code that may still hold its buffers
// after serve (h2c, a bridged HTTP/2 or upgraded request, TCP) keeps them:
// they go to the garbage collector with it.
func (c *conn) release() {
	bufs := c.bufs
	c.bufs = nil
	if bufs == nil || c.pinned || len(c.br.buf) != clientReadBuf || cap(c.out) > maxPooledOut {
		return
	}
	bufs.w.reset(nil, 0)
	bufs.bw.Reset(bufs.w)
	bufs.reqH, bufs.respH = c.req.headers[:0], c.resp.headers[:0]
	bufs.out, bufs.peerIP, bufs.fixed = c.out[:0], c.peerIP[:0], c.fixed[:0]
	connBufPool.Put(bufs)
}

// Read reads from the client connection with a progress-based idle
// deadline, re-armed at most once a second so that the common path costs
// no deadline update; while a head is being read the shorter
// ReadHeaderTimeout stands.
func (c *conn) Read(p []byte) (int, error) {
	if c.inRaw {
		rawReadHook()
		return 0, errReadInRaw
	}
	if !c.inHead {
		c.armIdle()
	}
	return c.nc.Read(p)
}

// headStarted arms ReadHeaderTimeout once a head is partially received.
func (c *conn) headStarted() {
	c.inHead = true
	// A fresh connection has no read deadline yet (rdl is zero): a head
	// whose first bytes came with the connection must get one too.
	if d := time.Now().Add(c.p.cfg.ReadHeaderTimeout); c.rdl.IsZero() || d.Before(c.rdl) {
		c.nc.SetReadDeadline(d)
		c.rdl = d
	}
}

// closeIfIdle closes the connection if it waits between requests; called
// by Shutdown with p.mu held.
func (c *conn) closeIfIdle() {
	if c.state.CompareAndSwap(stateIdle, stateClosing) {
		c.nc.Close()
	}
}

func (c *conn) serve() {
	defer c.p.wg.Done()
	defer c.release()
	defer c.p.trackConn(c, false)
	defer c.nc.Close()
	defer c.lingerIfPending()
	defer c.endWriteTimedOut()
	if k := c.mode.Kind; k == Fixed || k == Inbound {
		// A TCP cluster: an --upstream port for a TCP service, or the
		// inbound listener of a TCP app (--app-protocol tcp).
		b := c.p.bound.Load()
		if cl := b.table.Cluster(c.mode.Cluster); cl != nil && cl.Protocol == route.TCP {
			c.pinned = true
			c.state.Store(stateActive)
			if k == Inbound && !c.admitTCP(b, cl) {
				return
			}
			c.serveTCP(b, cl)
			return
		}
	}
	for first := true; ; first = false {
		if c.p.shutting.Load() || !c.state.CompareAndSwap(stateActive, stateIdle) && !first {
			return
		}
		if c.tlsRT != nil {
			c.rawTLS()
		}
		if c.rc != nil {
			if !c.afterRaw(c.serveRaw(first)) {
				return
			}
			continue
		}
		head, err := c.br.head(c.p.cfg.MaxRequestLine, c.p.cfg.MaxHeaderBytes, c.headStarted)
		c.inHead = false
		if err != nil {
			c.headError(err)
			return
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return
		}
		if first && string(head) == h2Preface {
			c.pinned = true
			c.p.h2.serveConn(c)
			return
		}
		if herr := parseRequest(&c.req, head, c.p.cfg.MaxHeaders); herr != nil {
			c.reject(herr)
			return
		}
		if !c.handle() {
			return
		}
	}
}

// endWriteTimedOut prepares the close of a connection whose client
// stopped reading (Config.WriteTimeout): the write error has already closed
// the upstream connection of the response in flight (relay) and ended
// serve. It counts and logs it, and makes the close reset the connection:
// a graceful close would leave the unread rest of the response — megabytes
// of kernel memory — in a FIN_WAIT1 socket for as long as the client keeps
// not reading (nginx's reset_timedout_connection). The response is cut
// short either way.
func (c *conn) endWriteTimedOut() {
	if !c.w.wd.expired {
		return
	}
	c.writeTimedOut()
}

func (c *conn) writeTimedOut() {
	if tc, ok := c.nc.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.p.metrics.writeTimeouts.Inc()
	c.p.log.Debug("client stopped reading its response: connection reset",
		"peer", c.nc.RemoteAddr().String(), "write_timeout", c.p.cfg.WriteTimeout)
}

// afterRaw takes over where serveRaw stopped and reports whether the
// connection goes on with the next request.
func (c *conn) afterRaw(step rawStep) bool {
	switch step {
	case rawHeadErr:
		c.headError(c.rawErr)
	case rawReject:
		c.reject(c.rawHerr)
	case rawH2:
		c.pinned = true
		c.p.h2.serveConn(c)
	case rawHandle:
		return c.handle()
	}
	return false
}

// headError answers limit violations; other errors (EOF, timeout, reset)
// just close the connection.
func (c *conn) headError(err error) {
	switch {
	case errors.Is(err, errLineTooLong):
		c.reject(errURITooLong)
	case errors.Is(err, errHeadTooLarge):
		c.reject(errTooLargeHeaders)
	case errors.Is(err, os.ErrDeadlineExceeded) && len(c.br.buffered()) > 0:
		c.reject(&httpError{408, "request header timeout"})
	}
}

// reject answers a malformed request and marks the connection for close:
// after a framing error the rest of the stream cannot be trusted.
func (c *conn) reject(e *httpError) {
	c.p.metrics.rejected.WithLabelValues(strconv.Itoa(e.code)).Inc()
	c.req.closeConn = true
	if e == errNotHTTP {
		return
	}
	c.localReply(e.code, e.msg)
	c.lingerClose()
}

// lingerClose half-closes and drains briefly what the client still sends,
// so that the kernel does not answer unread input with a reset that could
// destroy the error response in flight (as net/http's closeWriteAndWait).
// The input is discarded, never parsed. Any connection that can half-close
// (TCP, and TLS once the inbound listener has it) lingers.
func (c *conn) lingerClose() {
	c.linger = false
	hc, ok := c.nc.(interface{ CloseWrite() error })
	if !ok {
		return
	}
	hc.CloseWrite()
	c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.CopyN(io.Discard, c.nc, lingerMaxBytes)
}

// lingerIfPending lingers on close when a reply went out before the
// request body was read (see localReply).
func (c *conn) lingerIfPending() {
	if c.linger && !c.w.wd.expired {
		c.lingerClose()
	}
}

// localReply writes a response generated by the proxy. The connection is
// kept only when the request allows it and its body is not pending: after
// an early answer (a route timeout, an upstream reset, a local reply while
// the body is still arriving) the rest of the body must never be read as
// the next request, so the connection closes (after a lingering drain that
// discards what the client still sends).
func (c *conn) localReply(code int, msg string) (keep bool) {
	done := c.skipBody()
	c.linger = !done
	keep = done && !c.req.closeConn && !c.p.shutting.Load()
	w := c.bw
	w.WriteString("HTTP/1.1 ")
	writeInt(w, int64(code))
	w.WriteString(" ")
	w.WriteString(http.StatusText(code))
	w.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ")
	writeInt(w, int64(len(msg)+1))
	if !keep {
		w.WriteString("\r\nConnection: close")
	}
	if code == 504 && c.al.flags&accesslog.UpstreamStalled != 0 {
		w.WriteString("\r\n" + stalledHeader + ": 1")
	}
	w.WriteString("\r\n\r\n")
	w.WriteString(msg)
	w.WriteString("\n")
	return w.Flush() == nil && keep
}

// skipBody discards an unread request body if it is fully buffered and
// reports whether the connection can carry another request: only when the
// body was read to its end, never after part of it left the buffer.
func (c *conn) skipBody() bool {
	r := &c.req
	switch {
	case !r.hasBody() || c.bodyDone:
		return true
	case c.bodyConsumed || r.chunked || r.contentLength > int64(len(c.br.buffered())):
		return false
	}
	c.br.discard(int(r.contentLength))
	c.bodyDone = true
	return true
}

// startBody resets the body state for a newly parsed request.
func (c *conn) startBody() {
	c.bodyConsumed, c.bodyDone = false, false
}

// copyBody streams the request body to w.
func (c *conn) copyBody(w *bufio.Writer) error {
	c.bodyConsumed = true
	var err error
	if c.req.chunked {
		err = copyChunked(w, &c.br, true)
	} else {
		err = copyN(w, &c.br, c.req.contentLength)
	}
	c.bodyDone = err == nil
	return err
}

// readReplay buffers a body of up to limit bytes for retries and reports
// whether it did. A body already in the read buffer is always taken: it
// costs one copy and makes the request safe to resend on a stale
// upstream connection.
func (c *conn) readReplay(limit int) (bool, error) {
	r := &c.req
	c.replay = c.replay[:0]
	switch {
	case !r.hasBody():
		return true, nil
	case r.chunked:
		return false, nil
	case r.contentLength > int64(len(c.br.buffered())) && r.contentLength > int64(limit):
		return false, nil
	}
	n := int(r.contentLength)
	for len(c.replay) < n {
		if len(c.br.buffered()) == 0 {
			c.bodyConsumed = true
			if err := c.br.fill(len(c.br.buf)); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return false, err
			}
		}
		b := c.br.buffered()
		b = b[:min(len(b), n-len(c.replay))]
		c.replay = append(c.replay, b...)
		c.br.discard(len(b))
	}
	c.bodyConsumed, c.bodyDone = true, true
	return true, nil
}
