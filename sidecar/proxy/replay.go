package proxy

import (
	"errors"
	"io"
	"sync"
)

// Errors of replayReader.Read.
var (
	// errAttemptOver is what an abandoned attempt's body reader returns:
	// the request went on with another attempt.
	errAttemptOver = errors.New("proxy: request body taken over by another attempt")
	// errReplayLost fails an attempt started after part of the body was
	// dropped; roundTrip starts none (replayable), this is a safety net.
	errReplayLost = errors.New("proxy: request body no longer replayable")
)

// replayBody lets the attempts of one request on the net/http path read
// the client's body in turn. The body streams to the current attempt while
// the bytes read so far, up to limit, are kept so that another attempt can
// send them again; once more than limit bytes were read the request can no
// longer be replayed and the rest passes without a copy. This is how Envoy
// buffers a request for retries (per_request_buffer_limit_bytes), and,
// unlike waiting for the whole body before sending, it never stalls a
// bidirectional stream whose client waits for a response before it sends
// more. A client-streaming call thus keeps at most limit bytes in memory
// and is retried only while everything it sent fits.
//
// A transport may still read an abandoned attempt's body after RoundTrip
// returned (http.RoundTripper). So each attempt reads through its own
// replayReader, reads of src are serialized, and bytes that an abandoned
// attempt's read returns are kept for the current one, even past limit
// (at most one read per abandoned attempt). Safe for concurrent use.
type replayBody struct {
	src   io.Reader
	limit int

	// mu guards the fields below; cond (on mu) signals the end of a read of
	// src and a change of cur.
	mu      sync.Mutex
	cond    sync.Cond
	buf     []byte // bytes read from src from offset base on
	base    int64  // bytes dropped from the front of buf once over
	over    bool   // more than limit bytes were read: no replay
	reading bool   // a reader is in src.Read (without mu)
	err     error  // src's final error; io.EOF after the whole body
	cur     *replayReader
}

func newReplayBody(src io.Reader, limit int) *replayBody {
	rb := &replayBody{src: src, limit: max(limit, 0)}
	rb.cond.L = &rb.mu
	return rb
}

// next returns the body of a new attempt, which becomes the current one;
// the previous attempt's reader returns errAttemptOver from then on. Only
// while replayable may a second attempt start.
func (rb *replayBody) next() io.ReadCloser {
	r := &replayReader{rb: rb}
	rb.mu.Lock()
	rb.cur = r
	rb.cond.Broadcast()
	rb.mu.Unlock()
	return r
}

// replayable reports whether a new attempt can send the whole body read so
// far: nothing was dropped and the client's body did not fail. Nil-safe (no
// body: true).
func (rb *replayBody) replayable() bool {
	if rb == nil {
		return true
	}
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return !rb.over && (rb.err == nil || rb.err == io.EOF)
}

// complete reports whether the client's body was read to its end and no
// read of it is in progress. Nil-safe (no body: true).
func (rb *replayBody) complete() bool {
	if rb == nil {
		return true
	}
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return rb.err == io.EOF && !rb.reading
}

// failed reports whether reading the client's body failed (the client
// reset its stream or sent a malformed body). Nil-safe.
func (rb *replayBody) failed() bool {
	if rb == nil {
		return false
	}
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return rb.err != nil && rb.err != io.EOF
}

// readSrc reads src into p for r, which has read everything kept. mu is
// held on entry and exit, and released during the read.
func (rb *replayBody) readSrc(r *replayReader, p []byte) (int, error) {
	rb.reading = true
	rb.mu.Unlock()
	n, err := rb.src.Read(p)
	rb.mu.Lock()
	rb.reading = false
	rb.cond.Broadcast()
	if err != nil {
		rb.err = err
	}
	if rb.cur != r {
		rb.buf = append(rb.buf, p[:n]...)
		rb.over = rb.over || len(rb.buf) > rb.limit
		return 0, errAttemptOver
	}
	r.off += int64(n)
	switch {
	case !rb.over && len(rb.buf)+n <= rb.limit:
		rb.buf = append(rb.buf, p[:n]...)
	default:
		rb.over = true
		rb.base, rb.buf = r.off, nil
	}
	return n, err
}

// replayReader is one attempt's view of a replayBody.
type replayReader struct {
	rb  *replayBody
	off int64 // bytes of the body this reader returned
}

func (r *replayReader) Read(p []byte) (int, error) {
	rb := r.rb
	rb.mu.Lock()
	defer rb.mu.Unlock()
	for {
		switch kept := rb.base + int64(len(rb.buf)); {
		case rb.cur != r:
			return 0, errAttemptOver
		case r.off < rb.base:
			return 0, errReplayLost
		case r.off < kept:
			n := copy(p, rb.buf[r.off-rb.base:])
			r.off += int64(n)
			if rb.over && r.off == kept {
				rb.base, rb.buf = r.off, nil
			}
			return n, nil
		case rb.err != nil:
			return 0, rb.err
		case len(p) == 0:
			return 0, nil
		case !rb.reading:
			return rb.readSrc(r, p)
		}
		rb.cond.Wait()
	}
}

// Close ends the attempt's reads; the client's body stays open for the
// next attempt (the server closes it when the request ends).
func (r *replayReader) Close() error {
	rb := r.rb
	rb.mu.Lock()
	if rb.cur == r {
		rb.cur = nil
	}
	rb.cond.Broadcast()
	rb.mu.Unlock()
	return nil
}
