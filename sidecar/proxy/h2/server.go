package h2

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// clientPreface is what follows the request-line-like head the proxy's
// protocol detection consumed ("PRI * HTTP/2.0\r\n\r\n").
const clientPrefaceTail = "SM\r\n\r\n"

// errWake is returned by a frame handler after which streams waiting for
// window are woken (without mu).
var errWake = errors.New("h2: wake blocked streams")

// Handler serves the streams of downstream connections.
type Handler interface {
	// ServeStream is called on the connection's reader goroutine once a
	// request's headers are complete. It must not block; it sets the
	// stream's Sink before it returns (body events follow at once).
	ServeStream(s *Stream)
}

// ServerConfig configures a downstream connection.
type ServerConfig struct {
	// MaxConcurrentStreams is advertised to the client; more streams are
	// refused. Zero means 250.
	MaxConcurrentStreams uint32
	// HeadTimeout bounds the wait for the first request's HEADERS (the
	// HTTP/1 path's ReadHeaderTimeout). Zero means none.
	HeadTimeout time.Duration
	// IdleTimeout closes the connection when no stream was open for this
	// long. Zero means none.
	IdleTimeout time.Duration
	// WriteTimeout closes the connection when no byte could be written to
	// it for this long (see link's writeDeadline). Zero or negative: none.
	WriteTimeout time.Duration
	// MaxHeaderBytes caps a request's header list (RFC 9113 6.5.2); larger
	// requests get 431. Zero means 60 KiB.
	MaxHeaderBytes int
}

// ServerConn is one downstream HTTP/2 connection.
type ServerConn struct {
	cfg ServerConfig
	h   Handler
	br  *bufio.Reader
	rfr *http2.Framer
	dec *hpack.Decoder
	hb  block // the header block being decoded; reader-owned
	// maxID is the highest stream the client opened: written by the reader
	// under mu, read by the reader or under mu (GOAWAY).
	maxID uint32

	// mu guards l and the fields below, and the streams' flow state.
	mu          sync.Mutex
	l           link
	streams     map[uint32]*Stream
	active      int
	sendWindow  int32
	peerInitial int32 // the client's SETTINGS_INITIAL_WINDOW_SIZE
	recvWindow  int32
	unacked     int32
	blocked     []*Stream
	goingAway   bool
	sawHeaders  bool
	lastIdle    time.Time
	rdl         time.Time // the read deadline set
}

// NewServerConn prepares nc, from which the proxy read
// "PRI * HTTP/2.0\r\n\r\n" and then the bytes in buffered, for Serve.
func NewServerConn(nc net.Conn, buffered []byte, cfg ServerConfig, h Handler) *ServerConn {
	if cfg.MaxConcurrentStreams == 0 {
		cfg.MaxConcurrentStreams = 250
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = 60 << 10
	}
	sc := &ServerConn{cfg: cfg, h: h, streams: make(map[uint32]*Stream),
		sendWindow: initialWindow, peerInitial: initialWindow, recvWindow: initialWindow}
	sc.l.init(nc, &sc.mu, cfg.WriteTimeout)
	sc.l.lingers = true
	sc.l.drained = sc.wakeBlocked
	rest := append([]byte(nil), buffered...)
	sc.br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(rest), deadlineReader{sc}), 16<<10)
	sc.rfr = http2.NewFramer(io.Discard, sc.br)
	sc.rfr.SetMaxReadFrameSize(defaultMaxFrameSize)
	sc.rfr.SetReuseFrames()
	sc.dec = hpack.NewDecoder(4096, func(f hpack.HeaderField) { sc.hb.add(f) })
	sc.dec.SetMaxStringLength(cfg.MaxHeaderBytes)
	return sc
}

// Serve serves the connection until it ends and reports whether it ended
// on the write timeout. Streams still open then get Sink.OnReset.
func (sc *ServerConn) Serve() (writeTimedOut bool) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc.l.writeLoop()
	}()
	sc.mu.Lock()
	if sc.cfg.HeadTimeout > 0 {
		sc.setReadDeadline(time.Now().Add(sc.cfg.HeadTimeout))
	}
	sc.l.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: sc.cfg.MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: uint32(sc.cfg.MaxHeaderBytes)},
	)
	sc.l.fr.WriteWindowUpdate(0, connWindow-initialWindow)
	sc.recvWindow = connWindow
	sc.l.flush()
	sc.mu.Unlock()
	sc.readLoop()
	sc.mu.Lock()
	sc.l.closeAfterFlush()
	sc.mu.Unlock()
	select {
	case <-done:
	case <-time.After(time.Second):
		// The client does not read the GOAWAY: close regardless.
		sc.mu.Lock()
		sc.l.closeLocked()
		sc.mu.Unlock()
		<-done
	}
	sc.mu.Lock()
	if sc.l.halfClosed {
		sc.mu.Unlock()
		sc.linger()
		sc.mu.Lock()
	}
	sc.l.nc.Close()
	sc.l.closed = true
	left := make([]*Stream, 0, len(sc.streams))
	for _, s := range sc.streams {
		s.closed, s.localDone, s.remoteDone = true, true, true
		left = append(left, s)
	}
	clear(sc.streams)
	timedOut := sc.l.timedOut
	sc.mu.Unlock()
	for _, s := range left {
		if s.sink != nil {
			s.sink.OnReset(s)
		}
	}
	return timedOut
}

// linger reads and drops what the client still sends after the write side
// was shut down (link.finish), until it closes or the read deadline
// link.finish set (lingerTimeout after the shutdown) passes, so that the
// close that follows finds no unread bytes and sends no reset. The reader
// may have stopped before the client saw the GOAWAY (a connection error).
func (sc *ServerConn) linger() {
	io.CopyN(io.Discard, sc.l.nc, 1<<20)
}

// Shutdown starts a graceful close: GOAWAY, no new streams, close once
// the open ones completed. It does not block.
func (sc *ServerConn) Shutdown() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.goingAway || sc.l.closed {
		return
	}
	sc.goingAway = true
	sc.l.fr.WriteGoAway(sc.maxID, http2.ErrCodeNo, nil)
	if sc.active == 0 {
		sc.l.closeAfterFlush()
	}
	sc.l.flush()
}

// deadlineReader reads the connection, handling read deadlines below the
// Framer so that a frame is never cut at a deadline: the deadline closes
// the connection only when it was idle (or never sent a request) long
// enough, else it is moved on.
type deadlineReader struct{ sc *ServerConn }

func (r deadlineReader) Read(p []byte) (int, error) {
	for {
		n, err := r.sc.l.nc.Read(p)
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || r.sc.expired() {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// expired decides on a read deadline that passed.
func (sc *ServerConn) expired() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	now := time.Now()
	switch {
	case !sc.sawHeaders, sc.l.halfClosed:
		return true
	case sc.cfg.IdleTimeout <= 0:
		sc.setReadDeadline(time.Time{})
		return false
	case sc.active > 0:
		sc.setReadDeadline(now.Add(sc.cfg.IdleTimeout))
		return false
	case now.Sub(sc.lastIdle) >= sc.cfg.IdleTimeout:
		return true
	}
	sc.setReadDeadline(sc.lastIdle.Add(sc.cfg.IdleTimeout))
	return false
}

func (sc *ServerConn) setReadDeadline(t time.Time) {
	sc.rdl = t
	sc.l.nc.SetReadDeadline(t)
}

// readLoop reads and handles frames until the connection fails or a
// connection error ends it.
func (sc *ServerConn) readLoop() {
	var pre [len(clientPrefaceTail)]byte
	if _, err := io.ReadFull(sc.br, pre[:]); err != nil || string(pre[:]) != clientPrefaceTail {
		return // not HTTP/2: close (RFC 9113 3.4)
	}
	first := true
	for {
		f, err := sc.rfr.ReadFrame()
		if err == nil && first {
			first = false
			if _, ok := f.(*http2.SettingsFrame); !ok {
				err = http2.ConnectionError(http2.ErrCodeProtocol) // 3.4: SETTINGS first
			}
		}
		if err == nil {
			err = sc.handle(f)
		}
		if err == errWake {
			sc.wakeBlocked()
			err = nil
		}
		if err != nil && !sc.handleError(err) {
			return
		}
	}
}

// handleError handles a read or protocol error and reports whether the
// connection goes on.
func (sc *ServerConn) handleError(err error) bool {
	var se http2.StreamError
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &se):
		sc.mu.Lock()
		s := sc.resetID(se.StreamID, se.Code)
		sc.mu.Unlock()
		if s != nil && s.sink != nil {
			s.sink.OnReset(s)
		}
		return true
	case errors.As(err, &ce):
		sc.goAway(http2.ErrCode(ce))
	case errors.Is(err, http2.ErrFrameTooLarge):
		sc.goAway(http2.ErrCodeFrameSize)
	case errors.Is(err, os.ErrDeadlineExceeded):
		sc.goAway(http2.ErrCodeNo)
	}
	return false
}

// goAway sends GOAWAY with code; the connection closes after it.
func (sc *ServerConn) goAway(code http2.ErrCode) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.l.control() {
		sc.l.fr.WriteGoAway(sc.maxID, code, nil)
		sc.l.closeAfterFlush()
	}
}

func (sc *ServerConn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.DataFrame:
		return sc.onData(f)
	case *http2.HeadersFrame:
		return sc.onHeaders(f)
	case *http2.ContinuationFrame:
		return sc.onBlock(f.StreamID, f.HeaderBlockFragment(), f.HeadersEnded())
	case *http2.SettingsFrame:
		return sc.onSettings(f)
	case *http2.WindowUpdateFrame:
		return sc.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		return sc.onRST(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			sc.mu.Lock()
			if sc.l.control() {
				sc.l.fr.WritePing(true, f.Data)
				sc.l.flush()
			}
			sc.mu.Unlock()
		}
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
	case *http2.GoAwayFrame:
		sc.Shutdown()
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol) // 8.4: clients do not push
	}
	return nil // unknown and ignorable frames (4.1, 5.5)
}

func (sc *ServerConn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	// Settings apply in order: of several values of one setting, the last
	// wins (6.5.3).
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			return sc.setInitialWindow(int32(s.Val))
		case http2.SettingMaxFrameSize:
			sc.l.peerMaxFrame = s.Val
		case http2.SettingHeaderTableSize:
			sc.l.enc.SetMaxDynamicTableSizeLimit(s.Val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if sc.l.control() {
		sc.l.fr.WriteSettingsAck()
		sc.l.flush()
	}
	return errWake
}

// setInitialWindow applies a new SETTINGS_INITIAL_WINDOW_SIZE to every
// open stream's send window (6.9.2); mu is held.
func (sc *ServerConn) setInitialWindow(v int32) error {
	delta := v - sc.peerInitial
	sc.peerInitial = v
	for _, s := range sc.streams {
		if int64(s.sendWindow)+int64(delta) > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		s.sendWindow += delta
	}
	return nil
}

func (sc *ServerConn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	sc.mu.Lock()
	if f.StreamID == 0 {
		if int64(sc.sendWindow)+int64(f.Increment) > maxWindow {
			sc.mu.Unlock()
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		sc.sendWindow += int32(f.Increment)
		sc.mu.Unlock()
		sc.wakeBlocked()
		return nil
	}
	s := sc.streams[f.StreamID]
	if s == nil {
		sc.mu.Unlock()
		if f.StreamID > sc.maxID {
			return http2.ConnectionError(http2.ErrCodeProtocol) // idle stream (5.1)
		}
		return nil
	}
	if int64(s.sendWindow)+int64(f.Increment) > maxWindow {
		sc.mu.Unlock()
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	s.sendWindow += int32(f.Increment)
	sc.mu.Unlock()
	if s.sink != nil {
		s.sink.OnWritable(s)
	}
	return nil
}

func (sc *ServerConn) onRST(f *http2.RSTStreamFrame) error {
	if f.StreamID > sc.maxID {
		return http2.ConnectionError(http2.ErrCodeProtocol) // idle stream (5.1)
	}
	sc.mu.Lock()
	s := sc.streams[f.StreamID]
	if s != nil {
		s.localDone, s.remoteDone = true, true
		sc.closeLocked(s)
	}
	sc.mu.Unlock()
	if s != nil && s.sink != nil {
		s.sink.OnReset(s)
	}
	return nil
}

// block notes that s waits for window or buffer room; mu is held.
func (sc *ServerConn) block(s *Stream) {
	sc.l.held = true // wake it after the next batch, whatever held it back
	if !s.blocked {
		s.blocked = true
		sc.blocked = append(sc.blocked, s)
	}
}

// wakeBlocked tells the streams waiting for room to try again.
func (sc *ServerConn) wakeBlocked() {
	sc.mu.Lock()
	list := sc.blocked
	sc.blocked = nil
	for _, s := range list {
		s.blocked = false
	}
	sc.mu.Unlock()
	for _, s := range list {
		if s.sink != nil {
			s.sink.OnWritable(s)
		}
	}
}
