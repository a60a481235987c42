package h2

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Errors reported to Receiver.OnReset.
var (
	// ErrRefused means the upstream did not process the stream
	// (REFUSED_STREAM, or beyond a GOAWAY's last stream): it is safe to
	// send the request again, to another endpoint.
	ErrRefused = errors.New("h2: stream refused by the upstream")
	// ErrConnClosed means the upstream connection ended under the stream.
	ErrConnClosed = errors.New("h2: upstream connection closed")
	// ErrUpstreamReset means the upstream reset the stream.
	ErrUpstreamReset = errors.New("h2: stream reset by the upstream")
	// ErrBadResponse means the upstream sent a malformed response.
	ErrBadResponse = errors.New("h2: malformed upstream response")
)

// Receiver receives the events of one upstream stream. Its methods are
// called on the connection's reader goroutine (OnWritable also on its
// write loop), never with a connection lock held, and must not block.
type Receiver interface {
	// OnResponse passes the final response headers (1xx are dropped);
	// end means the response has no body (a trailers-only gRPC response).
	OnResponse(cs *ClientStream, status int, fields []hpack.HeaderField, end bool)
	// OnData passes response body bytes, valid only until it returns; the
	// consumer calls ClientStream.Consumed for bytes it passed on.
	OnData(cs *ClientStream, p []byte, end bool)
	// OnTrailers passes the trailers, which end the response.
	OnTrailers(cs *ClientStream, fields []hpack.HeaderField)
	// OnReset reports the end of the stream before its response ended:
	// ErrRefused, ErrConnClosed, ErrUpstreamReset or ErrBadResponse.
	OnReset(cs *ClientStream, err error)
	// OnWritable reports that a short WriteData may be retried.
	OnWritable(cs *ClientStream)
}

// ClientStream is one request on an upstream connection. Its methods are
// safe for concurrent use.
type ClientStream struct {
	cc *ClientConn
	id uint32
	// Guarded by cc.mu. r changes (SetReceiver) only until the response
	// headers arrive or the stream ends, both marked under cc.mu: an event
	// reads r in the critical section that decides it, or after the stream
	// ended there.
	r          Receiver
	sendWindow int32
	recvWindow int32
	unacked    int32
	gotHeaders bool
	localDone  bool
	remoteDone bool
	closed     bool
	blocked    bool
}

// ClientConn is one multiplexed upstream HTTP/2 connection (h2c prior
// knowledge, or h2 over a TLS connection the dialer negotiated).
type ClientConn struct {
	pool *Pool
	rfr  *http2.Framer
	br   *bufio.Reader
	dec  *hpack.Decoder
	hb   respBlock // reader-owned
	// hbEnd is END_STREAM of the block being decoded; reader-owned.
	hbEnd bool
	// reads counts reads with data, seenReads its value at the last read
	// deadline, pinged a keepalive PING unanswered; reader-owned.
	reads, seenReads uint64
	pinged           bool

	// mu guards l and the fields below.
	mu          sync.Mutex
	l           link
	streams     map[uint32]*ClientStream
	nextID      uint32
	maxStreams  uint32 // the upstream's SETTINGS_MAX_CONCURRENT_STREAMS
	sendWindow  int32
	peerInitial int32
	recvWindow  int32
	unacked     int32
	blocked     []*ClientStream
	goingAway   bool
	lastIdle    time.Time
	idle        time.Duration
	// usable mirrors available() for Pool.Get, which must not take mu.
	usable atomic.Bool
}

// respBlock collects a response header block.
type respBlock struct {
	fields    []hpack.HeaderField
	status    int
	malformed bool
	regular   bool
}

func (b *respBlock) add(f hpack.HeaderField) {
	if len(f.Name) > 0 && f.Name[0] == ':' {
		if f.Name != ":status" || b.regular || b.status != 0 {
			b.malformed = true
			return
		}
		n, err := strconv.Atoi(f.Value)
		if err != nil || n < 100 || n > 999 {
			b.malformed = true
		}
		b.status = n
		return
	}
	b.regular = true
	b.fields = append(b.fields, f)
}

// newClientConn starts the connection's goroutines on nc.
func newClientConn(p *Pool, nc net.Conn) *ClientConn {
	cc := &ClientConn{pool: p, streams: make(map[uint32]*ClientStream), nextID: 1, maxStreams: 100,
		sendWindow: initialWindow, peerInitial: initialWindow, recvWindow: connWindow,
		idle: p.cfg.IdleTimeout}
	cc.l.init(nc, &cc.mu, 0)
	cc.l.drained = cc.wakeBlocked
	cc.br = bufio.NewReaderSize(clientReader{cc}, 16<<10)
	cc.rfr = http2.NewFramer(io.Discard, cc.br)
	cc.rfr.SetMaxReadFrameSize(defaultMaxFrameSize)
	cc.rfr.SetReuseFrames()
	cc.dec = hpack.NewDecoder(4096, func(f hpack.HeaderField) { cc.hb.add(f) })
	cc.dec.SetMaxStringLength(1 << 20)
	cc.l.buf = append(cc.l.buf, http2.ClientPreface...)
	cc.l.fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
	)
	cc.l.fr.WriteWindowUpdate(0, connWindow-initialWindow)
	cc.lastIdle = time.Now()
	if cc.idle > 0 {
		nc.SetReadDeadline(cc.lastIdle.Add(cc.idle))
	} else {
		nc.SetReadDeadline(cc.lastIdle.Add(keepaliveIdle))
	}
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		cc.l.writeLoop()
	}()
	go func() {
		defer p.wg.Done()
		cc.readLoop()
	}()
	cc.usable.Store(true)
	cc.l.flush()
	return cc
}

// clientReader reads the connection; a read deadline closes it only when
// it had no stream for the pool's idle timeout.
type clientReader struct{ cc *ClientConn }

func (r clientReader) Read(p []byte) (int, error) {
	for {
		n, err := r.cc.l.nc.Read(p)
		if n > 0 {
			r.cc.reads++
		}
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || r.cc.idleExpired() {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// Keepalive of a connection with streams (x/net's ReadIdleTimeout and
// PingTimeout): a connection that read nothing for keepaliveIdle gets a
// PING, and is closed when nothing arrives for keepaliveTimeout after it
// (a crashed host that sends no reset).
const (
	keepaliveIdle    = 30 * time.Second
	keepaliveTimeout = 15 * time.Second
)

// idleExpired decides on a read deadline that passed; it runs on the
// reader goroutine. It closes a connection without streams idle for the
// pool's idle timeout, and one with streams that stopped answering.
func (cc *ClientConn) idleExpired() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	now := time.Now()
	if len(cc.streams) > 0 {
		switch {
		case cc.reads != cc.seenReads:
			cc.pinged = false
		case cc.pinged:
			cc.goingAway = true // no answer to the PING: the peer is gone
			cc.usable.Store(false)
			return true
		case cc.l.control():
			cc.l.fr.WritePing(false, [8]byte{'s', 'h', 'o', 'a', 'l'})
			cc.l.flush()
			cc.pinged = true
			cc.seenReads = cc.reads
			cc.l.nc.SetReadDeadline(now.Add(keepaliveTimeout))
			return false
		}
		cc.seenReads = cc.reads
		cc.l.nc.SetReadDeadline(now.Add(keepaliveIdle))
		return false
	}
	cc.pinged = false
	if cc.idle <= 0 {
		cc.l.nc.SetReadDeadline(now.Add(keepaliveIdle))
		return false
	}
	if now.Sub(cc.lastIdle) >= cc.idle {
		cc.goingAway = true // no new stream may pick it now
		cc.usable.Store(false)
		return true
	}
	cc.l.nc.SetReadDeadline(cc.lastIdle.Add(cc.idle))
	return false
}

// available reports whether the connection takes another stream; mu is
// held.
func (cc *ClientConn) available() bool {
	return !cc.goingAway && !cc.l.closed && uint32(len(cc.streams)) < cc.maxStreams && cc.nextID < 1<<31-1
}

// NewStream opens a stream with the request headers fields (pseudo-headers
// first) and reports false when the connection cannot take it (full,
// going away or closed): the caller picks another connection.
func (cc *ClientConn) NewStream(fields []hpack.HeaderField, end bool, r Receiver) (*ClientStream, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if !cc.available() {
		return nil, false
	}
	cs := &ClientStream{cc: cc, id: cc.nextID, r: r, sendWindow: cc.peerInitial, recvWindow: streamWindow, localDone: end}
	cc.nextID += 2
	cc.streams[cs.id] = cs
	cc.l.writeHeaders(cs.id, fields, end)
	cc.usable.Store(cc.available())
	return cs, true
}

// WriteData queues as much of p as flow control and the write buffer
// allow and returns how much; Receiver.OnWritable signals room after a
// short write. end ends the request once all of p is queued.
func (cs *ClientStream) WriteData(p []byte, end bool) (int, error) {
	cc := cs.cc
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cs.localDone || cs.closed || cc.l.closed {
		return 0, ErrStreamClosed
	}
	n := max(min(len(p), int(min(cs.sendWindow, cc.sendWindow)), cc.l.room()), 0)
	if n < len(p) {
		cc.l.held = true
		if !cs.blocked {
			cs.blocked = true
			cc.blocked = append(cc.blocked, cs)
		}
	}
	if n == 0 && !(end && len(p) == 0) {
		return 0, nil
	}
	cs.sendWindow -= int32(n)
	cc.sendWindow -= int32(n)
	end = end && n == len(p)
	cc.l.writeData(cs.id, p[:n], end)
	if end {
		cs.localDone = true
		cc.maybeClose(cs)
	}
	return n, nil
}

// WriteTrailers sends request trailers, which end the request.
func (cs *ClientStream) WriteTrailers(fields []hpack.HeaderField) error {
	cc := cs.cc
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cs.localDone || cs.closed || cc.l.closed {
		return ErrStreamClosed
	}
	cc.l.writeHeaders(cs.id, fields, true)
	cs.localDone = true
	cc.maybeClose(cs)
	return nil
}

// Reset cancels the stream (RST_STREAM) unless it ended; no event follows.
func (cs *ClientStream) Reset(code http2.ErrCode) {
	cc := cs.cc
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cs.closed {
		return
	}
	if cc.l.control() {
		cc.l.fr.WriteRSTStream(cs.id, code)
		cc.l.flush()
	}
	cs.localDone, cs.remoteDone = true, true
	cc.maybeClose(cs)
}

// SetReceiver hands the stream's events to r from now on, unless its
// response headers arrived or the stream ended (reset, refused, connection
// closed): it reports whether r receives the response, or the end of the
// stream, and nothing else does. A Receiver that gives the stream away
// may still get an OnWritable it must ignore.
func (cs *ClientStream) SetReceiver(r Receiver) bool {
	cc := cs.cc
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cs.gotHeaders || cs.remoteDone || cs.closed {
		return false
	}
	cs.r = r
	return true
}

// Consumed grants the upstream n more bytes of the response body.
func (cs *ClientStream) Consumed(n int) {
	cc := cs.cc
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.consumed(cs, int32(n))
}

func (cc *ClientConn) consumed(cs *ClientStream, n int32) {
	cc.unacked += n
	if cc.unacked >= connWindow/4 && cc.l.control() {
		cc.l.fr.WriteWindowUpdate(0, uint32(cc.unacked))
		cc.recvWindow += cc.unacked
		cc.unacked = 0
		cc.l.flush()
	}
	if cs == nil || cs.remoteDone {
		return
	}
	cs.unacked += n
	if cs.unacked >= streamWindow/4 && cc.l.control() {
		cc.l.fr.WriteWindowUpdate(cs.id, uint32(cs.unacked))
		cs.recvWindow += cs.unacked
		cs.unacked = 0
		cc.l.flush()
	}
}

// maybeClose forgets a stream that ended both ways; mu is held.
func (cc *ClientConn) maybeClose(cs *ClientStream) {
	if cs.closed || !cs.localDone || !cs.remoteDone {
		return
	}
	cs.closed = true
	delete(cc.streams, cs.id)
	if len(cc.streams) == 0 {
		cc.lastIdle = time.Now()
		if cc.goingAway {
			cc.l.closeAfterFlush()
		}
	}
	was := cc.usable.Load()
	cc.usable.Store(cc.available())
	if !was && cc.usable.Load() {
		cc.pool.wake() // a full connection has room again
	}
}

func (cc *ClientConn) wakeBlocked() {
	cc.mu.Lock()
	list := cc.blocked
	cc.blocked = nil
	for _, cs := range list {
		cs.blocked = false
	}
	cc.mu.Unlock()
	for _, cs := range list {
		cc.mu.Lock() // a blocked stream may change hands (SetReceiver)
		r := cs.r
		cc.mu.Unlock()
		r.OnWritable(cs)
	}
}

// drain takes no new stream and closes once the open ones are done.
func (cc *ClientConn) drain() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.goingAway = true
	cc.usable.Store(false)
	if len(cc.streams) == 0 {
		cc.l.closeAfterFlush()
	}
}

// close closes the connection at once.
func (cc *ClientConn) close() {
	cc.mu.Lock()
	cc.goingAway = true
	cc.usable.Store(false)
	cc.l.closeLocked()
	cc.mu.Unlock()
}
