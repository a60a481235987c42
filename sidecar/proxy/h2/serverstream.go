package h2

import (
	"time"

	"golang.org/x/net/http2"
)

// The stream side of ServerConn: request frames, stream states and flow
// control.

func (sc *ServerConn) onData(f *http2.DataFrame) error {
	id, n := f.StreamID, int32(f.Length)
	if id > sc.maxID {
		return http2.ConnectionError(http2.ErrCodeProtocol) // idle stream (5.1)
	}
	sc.mu.Lock()
	if sc.recvWindow < n {
		sc.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	sc.recvWindow -= n
	s := sc.streams[id]
	if s == nil || s.remoteDone {
		// Closed or half-closed (remote): the bytes still count for the
		// connection window, which they are given back to at once.
		sc.connConsumed(n)
		sc.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	if s.recvWindow < n {
		sc.connConsumed(n)
		sc.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	}
	s.recvWindow -= n
	data := f.Data()
	s.recvd += int64(len(data))
	end := f.StreamEnded()
	if s.ContentLength >= 0 && (s.recvd > s.ContentLength || end && s.recvd != s.ContentLength) {
		sc.connConsumed(n)
		sc.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol} // 8.1.1
	}
	if s.localDone {
		// The response ended: the rest of the request is dropped.
		sc.connConsumed(n)
		if end {
			sc.endRemote(s)
		}
		sc.mu.Unlock()
		return nil
	}
	if pad := n - int32(len(data)); pad > 0 {
		sc.consumedLocked(s, pad) // padding is consumed on arrival
	}
	if end {
		sc.endRemote(s)
	}
	sc.mu.Unlock()
	s.sink.OnData(s, data, end)
	return nil
}

func (sc *ServerConn) onHeaders(f *http2.HeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol) // 5.1.1: client streams are odd
	}
	sc.mu.Lock()
	s := sc.streams[id]
	sc.mu.Unlock()
	switch {
	case s != nil:
		sc.hb.reset(true, sc.cfg.MaxHeaderBytes)
	case id <= sc.maxID:
		return http2.ConnectionError(http2.ErrCodeStreamClosed) // 5.1: closed stream
	default:
		sc.maxID = id
		sc.hb.reset(false, sc.cfg.MaxHeaderBytes)
		sc.mu.Lock()
		sc.sawHeaders = true
		sc.mu.Unlock()
	}
	if f.HasPriority() && f.Priority.StreamDep == id {
		sc.hb.malformed = "stream depends on itself" // 5.3.1
	}
	sc.hb.ended = f.StreamEnded()
	return sc.onBlock(id, f.HeaderBlockFragment(), f.HeadersEnded())
}

// onBlock decodes a header block fragment and handles the complete block.
func (sc *ServerConn) onBlock(id uint32, frag []byte, end bool) error {
	if _, err := sc.dec.Write(frag); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	if !end {
		return nil
	}
	if err := sc.dec.Close(); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	if sc.hb.trailers {
		return sc.onTrailers(id)
	}
	return sc.onRequest(id)
}

func (sc *ServerConn) onTrailers(id uint32) error {
	b := &sc.hb
	sc.mu.Lock()
	s := sc.streams[id]
	if s == nil {
		sc.mu.Unlock()
		return nil
	}
	switch {
	case s.remoteDone:
		sc.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed} // half-closed (remote)
	case !b.ended || b.malformed != "" || b.tooLarge:
		sc.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol} // 8.1: trailers end the stream
	case s.ContentLength >= 0 && s.recvd != s.ContentLength:
		sc.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	s.Trailers = append(s.Trailers[:0], b.fields...)
	sc.endRemote(s)
	sc.mu.Unlock()
	s.sink.OnData(s, nil, true)
	return nil
}

func (sc *ServerConn) onRequest(id uint32) error {
	b := &sc.hb
	b.checkRequest()
	if b.malformed != "" {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if b.ended && b.length > 0 {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol} // 8.1.1
	}
	sc.mu.Lock()
	if sc.goingAway || sc.active >= int(sc.cfg.MaxConcurrentStreams) {
		sc.resetID(id, http2.ErrCodeRefusedStream) // 5.1.2
		sc.mu.Unlock()
		return nil
	}
	s := &Stream{sc: sc, id: id, Method: b.method, Scheme: b.scheme, Authority: b.authority, Path: b.path,
		ContentLength: b.length, Ended: b.ended, sendWindow: sc.peerInitial, recvWindow: streamWindow}
	s.Fields = append(s.fieldsBuf[:0:len(s.fieldsBuf)], b.fields...)
	sc.streams[id] = s
	sc.active++
	if b.ended {
		s.remoteDone = true
	}
	if b.tooLarge {
		sc.mu.Unlock()
		s.WriteHeaders(431, nil, true) // RFC 6585; the stream ends with it
		return nil
	}
	sc.mu.Unlock()
	sc.h.ServeStream(s)
	return nil
}

// resetID sends RST_STREAM for id, closing its stream if open, which it
// returns for the caller to notify (without mu); mu is held.
func (sc *ServerConn) resetID(id uint32, code http2.ErrCode) *Stream {
	if s := sc.streams[id]; s != nil {
		sc.resetLocked(s, code)
		return s
	}
	if sc.l.control() {
		sc.l.fr.WriteRSTStream(id, code)
		sc.l.flush()
	}
	return nil
}

// resetLocked resets s; mu is held.
func (sc *ServerConn) resetLocked(s *Stream, code http2.ErrCode) {
	if !s.closed && sc.l.control() {
		sc.l.fr.WriteRSTStream(s.id, code)
		sc.l.flush()
	}
	s.localDone, s.remoteDone = true, true
	sc.closeLocked(s)
}

// endLocal notes the end of the response; mu is held. A request still
// sending its body may finish it (its bytes are dropped): no RST_STREAM
// (RFC 9113 8.1 allows NO_ERROR), so that the stream's errors (flow
// control, state) are still reported as the protocol requires.
func (sc *ServerConn) endLocal(s *Stream) {
	s.localDone = true
	sc.closeLocked(s)
}

// endRemote notes the end of the request; mu is held.
func (sc *ServerConn) endRemote(s *Stream) {
	s.remoteDone = true
	if s.localDone {
		sc.closeLocked(s)
	}
}

// closeLocked removes a stream that ended both ways; mu is held.
func (sc *ServerConn) closeLocked(s *Stream) {
	if s.closed || !s.localDone || !s.remoteDone {
		return
	}
	s.closed = true
	delete(sc.streams, s.id)
	sc.active--
	if sc.active == 0 {
		sc.lastIdle = time.Now()
		if sc.goingAway {
			sc.l.closeAfterFlush()
		}
	}
}

// consumedLocked grants back n consumed bytes of s; mu is held.
func (sc *ServerConn) consumedLocked(s *Stream, n int32) {
	sc.connConsumed(n)
	if s.remoteDone || s.closed {
		return
	}
	s.unacked += n
	if s.unacked >= streamWindow/4 && sc.l.control() {
		sc.l.fr.WriteWindowUpdate(s.id, uint32(s.unacked))
		s.recvWindow += s.unacked
		s.unacked = 0
		sc.l.flush()
	}
}

// connConsumed grants back n bytes of the connection window; mu is held.
func (sc *ServerConn) connConsumed(n int32) {
	sc.unacked += n
	if sc.unacked >= connWindow/4 && sc.l.control() {
		sc.l.fr.WriteWindowUpdate(0, uint32(sc.unacked))
		sc.recvWindow += sc.unacked
		sc.unacked = 0
		sc.l.flush()
	}
}
