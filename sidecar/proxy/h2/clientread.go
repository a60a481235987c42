package h2

import (
	"errors"

	"golang.org/x/net/http2"
)

// readLoop reads and dispatches the upstream's frames until the
// connection ends, then fails the streams left.
func (cc *ClientConn) readLoop() {
	defer cc.finish()
	for {
		f, err := cc.rfr.ReadFrame()
		if err == nil {
			err = cc.handle(f)
		}
		if err == nil {
			continue
		}
		var se http2.StreamError
		if errors.As(err, &se) {
			cc.failStream(se.StreamID, se.Code, ErrBadResponse)
			continue
		}
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			cc.mu.Lock()
			if cc.l.control() {
				cc.l.fr.WriteGoAway(0, http2.ErrCode(ce), nil)
				cc.l.closeAfterFlush()
			}
			cc.mu.Unlock()
		}
		return
	}
}

// finish closes the connection and fails its remaining streams.
func (cc *ClientConn) finish() {
	cc.mu.Lock()
	cc.goingAway = true
	cc.usable.Store(false)
	cc.l.closeLocked()
	left := make([]*ClientStream, 0, len(cc.streams))
	for _, cs := range cc.streams {
		cs.closed, cs.localDone, cs.remoteDone = true, true, true
		left = append(left, cs)
	}
	clear(cc.streams)
	cc.mu.Unlock()
	for _, cs := range left {
		// Ended under mu above: r no longer changes (SetReceiver).
		cs.r.OnReset(cs, ErrConnClosed)
	}
	cc.pool.remove(cc)
}

func (cc *ClientConn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.DataFrame:
		return cc.onData(f)
	case *http2.HeadersFrame:
		cc.hb = respBlock{fields: cc.hb.fields[:0]}
		return cc.onBlock(f.StreamID, f.HeaderBlockFragment(), f.HeadersEnded(), f.StreamEnded())
	case *http2.ContinuationFrame:
		return cc.onBlock(f.StreamID, f.HeaderBlockFragment(), f.HeadersEnded(), false)
	case *http2.SettingsFrame:
		return cc.onSettings(f)
	case *http2.WindowUpdateFrame:
		return cc.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		err := ErrUpstreamReset
		if f.ErrCode == http2.ErrCodeRefusedStream {
			err = ErrRefused // 8.7: not processed, safe to retry
		}
		cc.failStream(f.StreamID, 0, err)
	case *http2.PingFrame:
		if !f.IsAck() {
			cc.mu.Lock()
			if cc.l.control() {
				cc.l.fr.WritePing(true, f.Data)
				cc.l.flush()
			}
			cc.mu.Unlock()
		}
	case *http2.GoAwayFrame:
		cc.onGoAway(f)
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol) // push was disabled
	}
	return nil
}

// onGoAway drains the connection: no new streams; streams above the last
// one the upstream will process are refused (RFC 9113 6.8) and can be
// retried elsewhere.
func (cc *ClientConn) onGoAway(f *http2.GoAwayFrame) {
	cc.mu.Lock()
	cc.goingAway = true
	cc.usable.Store(false)
	var refused []*ClientStream
	for id, cs := range cc.streams {
		if id > f.LastStreamID {
			cs.closed, cs.localDone, cs.remoteDone = true, true, true
			delete(cc.streams, id)
			refused = append(refused, cs)
		}
	}
	if len(cc.streams) == 0 {
		cc.l.closeAfterFlush()
	}
	cc.mu.Unlock()
	for _, cs := range refused {
		// Ended under mu above: r no longer changes (SetReceiver).
		cs.r.OnReset(cs, ErrRefused)
	}
}

// failStream ends a stream with err, resetting it with code unless zero.
func (cc *ClientConn) failStream(id uint32, code http2.ErrCode, err error) {
	cc.mu.Lock()
	cs := cc.streams[id]
	if code != 0 && cc.l.control() {
		cc.l.fr.WriteRSTStream(id, code)
		cc.l.flush()
	}
	var r Receiver
	if cs != nil {
		cs.localDone, cs.remoteDone = true, true
		cc.maybeClose(cs)
		r = cs.r
	}
	cc.mu.Unlock()
	if r != nil {
		r.OnReset(cs, err)
	}
}

func (cc *ClientConn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	cc.mu.Lock()
	grew := false
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingMaxConcurrentStreams:
			grew = s.Val > cc.maxStreams
			cc.maxStreams = s.Val
			cc.usable.Store(cc.available())
		case http2.SettingInitialWindowSize:
			delta := int32(s.Val) - cc.peerInitial
			cc.peerInitial = int32(s.Val)
			for _, cs := range cc.streams {
				cs.sendWindow += delta
			}
		case http2.SettingMaxFrameSize:
			cc.l.peerMaxFrame = s.Val
		case http2.SettingHeaderTableSize:
			cc.l.enc.SetMaxDynamicTableSizeLimit(s.Val)
		}
		return nil
	})
	if err == nil && cc.l.control() {
		cc.l.fr.WriteSettingsAck()
		cc.l.flush()
	}
	cc.mu.Unlock()
	if err != nil {
		return err
	}
	cc.wakeBlocked()
	if grew {
		cc.pool.wake()
	}
	return nil
}

func (cc *ClientConn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	cc.mu.Lock()
	if f.StreamID == 0 {
		cc.sendWindow += int32(f.Increment)
		cc.mu.Unlock()
		cc.wakeBlocked()
		return nil
	}
	cs := cc.streams[f.StreamID]
	var r Receiver
	if cs != nil {
		cs.sendWindow += int32(f.Increment)
		r = cs.r
	}
	cc.mu.Unlock()
	if r != nil {
		r.OnWritable(cs)
	}
	return nil
}

func (cc *ClientConn) onData(f *http2.DataFrame) error {
	n := int32(f.Length)
	cc.mu.Lock()
	if cc.recvWindow < n {
		cc.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	cc.recvWindow -= n
	cs := cc.streams[f.StreamID]
	if cs == nil || cs.remoteDone || !cs.gotHeaders || cs.recvWindow < n {
		cc.consumed(nil, n)
		cc.mu.Unlock()
		if cs != nil {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
		return nil // a stream the proxy reset
	}
	cs.recvWindow -= n
	data := f.Data()
	if pad := n - int32(len(data)); pad > 0 {
		cc.consumed(cs, pad)
	}
	end := f.StreamEnded()
	if end {
		cs.remoteDone = true
		cc.maybeClose(cs)
	}
	r := cs.r
	cc.mu.Unlock()
	r.OnData(cs, data, end)
	return nil
}

// onBlock decodes a response header block fragment; a complete block is
// the response headers (1xx dropped) or the trailers.
func (cc *ClientConn) onBlock(id uint32, frag []byte, endHeaders, endStream bool) error {
	if endStream {
		cc.hbEnd = true
	}
	if _, err := cc.dec.Write(frag); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	if !endHeaders {
		return nil
	}
	if err := cc.dec.Close(); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	end := cc.hbEnd
	cc.hbEnd = false
	b := &cc.hb
	cc.mu.Lock()
	cs := cc.streams[id]
	if cs == nil || cs.remoteDone {
		cc.mu.Unlock()
		return nil
	}
	trailers := cs.gotHeaders
	switch {
	case b.malformed || !trailers && b.status == 0 || trailers && (b.status != 0 || !end):
		cc.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	case !trailers && b.status < 200:
		cc.mu.Unlock()
		return nil // interim response
	}
	cs.gotHeaders = true
	if end {
		cs.remoteDone = true
		cc.maybeClose(cs)
	}
	r := cs.r
	cc.mu.Unlock()
	if trailers {
		r.OnTrailers(cs, b.fields)
	} else {
		r.OnResponse(cs, b.status, b.fields, end)
	}
	return nil
}
