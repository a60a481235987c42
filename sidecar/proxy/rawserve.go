package proxy

import (
	"errors"
	"time"
)

// rawStep is what serveRaw leaves to the blocking path of serve.
type rawStep uint8

const (
	rawDone    rawStep = iota // close the connection
	rawHeadErr                // c.rawErr ended the head (headError)
	rawReject                 // c.rawHerr rejects the parsed head
	rawH2                     // the HTTP/2 preface arrived
	rawHandle                 // c.req is parsed; handle it with blocking reads
)

// errReadInRaw is returned by conn.Read inside serveRaw: the raw callback
// holds the connection's read lock, so a blocking read there would never
// return. serveBuffered only handles requests that need no further read.
var errReadInRaw = errors.New("proxy: client read inside the raw read callback")

// rawReadHook is called when errReadInRaw is returned; tests make it fail.
var rawReadHook = func() {}

// serveBuffered handles the complete, self-contained requests in the read
// buffer. more reports that more bytes are needed; otherwise step says
// what serve must do next.
func (c *conn) serveBuffered() (step rawStep, more bool) {
	for {
		head, err := c.br.bufferedHead(c.p.cfg.MaxRequestLine, c.p.cfg.MaxHeaderBytes, c.headStarted)
		switch {
		case err != nil:
			c.inHead = false
			c.rawErr = err
			return rawHeadErr, false
		case head == nil:
			return rawDone, true
		}
		c.inHead = false
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return rawDone, false
		}
		if c.rawFirst && string(head) == h2Preface {
			return rawH2, false
		}
		if herr := parseRequest(&c.req, head, c.p.cfg.MaxHeaders); herr != nil {
			c.rawHerr = herr
			return rawReject, false
		}
		if !c.selfContained() {
			return rawHandle, false
		}
		keep := c.handle()
		switch {
		case c.escaped:
			c.escaped = false
			return rawHandle, false
		case !keep, c.p.shutting.Load(), !c.state.CompareAndSwap(stateActive, stateIdle):
			return rawDone, false
		}
		c.rawFirst = false
	}
}

// selfContained reports whether the parsed request can be served without
// reading from the client again: no upgrade, and a body (if any) with a
// length that is already buffered.
func (c *conn) selfContained() bool {
	r := &c.req
	return !r.upgrade && !r.chunked && r.contentLength <= int64(len(c.br.buffered()))
}

// armIdle moves the idle read deadline forward, at most once a second
// (see Read).
func (c *conn) armIdle() {
	if d := time.Now().Add(c.p.cfg.IdleTimeout); d.Sub(c.rdl) > time.Second {
		c.nc.SetReadDeadline(d)
		c.rdl = d
	}
}
