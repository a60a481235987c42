package h2

import (
	"errors"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// ErrStreamClosed is returned by writes to a stream that was reset or
// whose connection closed.
var ErrStreamClosed = errors.New("h2: stream closed")

// Sink receives the events of one downstream stream. Its methods are
// called on the connection's reader goroutine (OnWritable also on its
// write loop) and must not block.
type Sink interface {
	// OnData passes request body bytes, valid only until it returns; end
	// marks the end of the request (its trailers are in Stream.Trailers).
	// The consumer calls Stream.Consumed for the bytes it passed on.
	OnData(s *Stream, p []byte, end bool)
	// OnReset reports that the client reset the stream or the connection
	// ended before the stream completed. No event follows.
	OnReset(s *Stream)
	// OnWritable reports that a short WriteData may be retried.
	OnWritable(s *Stream)
}

// Stream is one request of a downstream connection. The request fields
// are set before Handler.ServeStream and are read-only afterwards; they
// reference the connection's buffers and must be copied to be retained
// past the stream's end. The write methods are safe for concurrent use.
type Stream struct {
	sc *ServerConn
	id uint32

	// Method, Scheme, Authority and Path are the request pseudo-headers.
	Method, Scheme, Authority, Path string
	// Fields are the regular request fields, names in lowercase.
	Fields []hpack.HeaderField
	// Trailers are the request trailers, set before the last OnData.
	Trailers []hpack.HeaderField
	// ContentLength is the request's content-length; -1 when absent.
	ContentLength int64
	// Ended reports that the request has no body (END_STREAM on HEADERS).
	Ended bool

	sink Sink
	// fieldsBuf holds Fields of a request with few of them.
	fieldsBuf [16]hpack.HeaderField
	// Fields below are guarded by sc.mu.
	sendWindow  int32
	recvWindow  int32 // what the client may still send
	unacked     int32 // consumed bytes not yet granted back
	recvd       int64 // body bytes received
	headersSent bool
	localDone   bool // END_STREAM or RST_STREAM sent
	remoteDone  bool // END_STREAM or RST_STREAM received
	closed      bool // removed from the connection
	blocked     bool // in sc.blocked
}

// ID returns the stream identifier.
func (s *Stream) ID() uint32 { return s.id }

// SetSink sets the receiver of the stream's events; it must be called in
// Handler.ServeStream.
func (s *Stream) SetSink(k Sink) { s.sink = k }

// WriteHeaders queues the response headers: :status, then fields (names in
// lowercase, no pseudo-headers). end ends the response.
func (s *Stream) WriteHeaders(status int, fields []hpack.HeaderField, end bool) error {
	sc := s.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if s.localDone || sc.l.closed {
		return ErrStreamClosed
	}
	l := &sc.l
	l.hbuf = l.hbuf[:0]
	l.enc.WriteField(hpack.HeaderField{Name: ":status", Value: StatusValue(status)})
	for i := range fields {
		l.enc.WriteField(fields[i])
	}
	l.writeBlock(s.id, end)
	s.headersSent = true
	if end {
		sc.endLocal(s)
	}
	return nil
}

// WriteTrailers queues the trailers, which end the response.
func (s *Stream) WriteTrailers(fields []hpack.HeaderField) error {
	sc := s.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if s.localDone || sc.l.closed {
		return ErrStreamClosed
	}
	sc.l.writeHeaders(s.id, fields, true)
	sc.endLocal(s)
	return nil
}

// WriteData queues as much of p as flow control and the connection's
// write buffer allow and returns how much; after a short write
// Sink.OnWritable signals room for more. end ends the response once all
// of p is queued. It never blocks.
func (s *Stream) WriteData(p []byte, end bool) (int, error) {
	sc := s.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if s.localDone || sc.l.closed {
		return 0, ErrStreamClosed
	}
	n := min(len(p), int(min(s.sendWindow, sc.sendWindow)), sc.l.room())
	n = max(n, 0)
	if n < len(p) {
		sc.block(s)
	}
	if n == 0 && !(end && len(p) == 0) {
		return 0, nil
	}
	s.sendWindow -= int32(n)
	sc.sendWindow -= int32(n)
	end = end && n == len(p)
	sc.l.writeData(s.id, p[:n], end)
	if end {
		sc.endLocal(s)
	}
	return n, nil
}

// Reset resets the stream with code (RST_STREAM) unless it has ended.
func (s *Stream) Reset(code http2.ErrCode) {
	sc := s.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if s.localDone || sc.l.closed {
		return
	}
	sc.resetLocked(s, code)
}

// Consumed grants the client n more bytes of the request body: the
// consumer passed them on (flow control proportional to what was
// forwarded).
func (s *Stream) Consumed(n int) {
	sc := s.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.consumedLocked(s, int32(n))
}
