//go:build unix

package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Go's poller reads first and waits only when the read returns EAGAIN, and
// it forgets readiness each time a read starts (internal/poll's
// prepareRead). Right after a request is written upstream the response is
// never there yet, so a plain Read costs a wasted read(2) per request.
// Writing the request from inside a raw read callback registers interest
// before the write; the response then wakes the waiter and the first read
// finds data — the same count of system calls as nginx's event loop.

// Inside those callbacks the connection's descriptor is pinned (a Close
// waits for the callback), so reads and writes there use raw system calls:
// the sockets are non-blocking, a call never waits, and the runtime need
// not prepare to hand the processor to another thread as it does around
// every syscall.Syscall — on a proxy pinned to one core, a write the
// kernel preempted would otherwise cost the goroutine its turn (sysmon
// retakes the P; the goroutine queues behind every runnable one).

// connWriter is the io.Writer under a connection's bufio.Writer. While fd
// is set (inside a raw callback of that connection) it writes with raw
// system calls and leaves only what the socket does not take at once to
// the net.Conn, which waits for room under the write deadline wd arms
// (none for upstream connections: their deadline is the request's).
type connWriter struct {
	nc net.Conn
	fd int // -1: not inside a callback
	// early counts the bytes written outside a callback since the last
	// reset (flushAndFill: a streamed body the bufio.Writer passed on).
	early int
	wd    writeDeadline
}

// newConnWriter returns nc's writer; writeTimeout (<= 0: none) bounds
// the time a write may wait without progress.
func newConnWriter(nc net.Conn, writeTimeout time.Duration) *connWriter {
	w := &connWriter{}
	w.reset(nc, writeTimeout)
	return w
}

// reset makes w a fresh writer for nc (a pooled writer's next connection).
func (w *connWriter) reset(nc net.Conn, writeTimeout time.Duration) {
	*w = connWriter{nc: nc, fd: -1, wd: newWriteDeadline(writeTimeout)}
}

func (w *connWriter) Write(p []byte) (int, error) {
	if w.fd < 0 {
		w.early += len(p)
	}
	n := 0
	for w.fd >= 0 && n < len(p) {
		m, e := rawWrite(uintptr(w.fd), p[n:])
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			break // EAGAIN, or an error the net.Conn reports in its own words
		}
		n += m
	}
	if n == len(p) {
		return n, nil
	}
	m, err := w.wd.write(w.nc, p[n:])
	return n + m, err
}

// errNotQuiet fails an exchange on a pooled connection that is not quiet
// before the request: see quiet.
var errNotQuiet = errors.New("proxy: pooled upstream connection closed or sent unsolicited bytes")

// quiet reports whether a pooled connection has nothing to read: an
// upstream that sent bytes nobody asked for after a complete response (a
// second response, the body of a HEAD response, the other protocol after
// an unrequested 101) or closed it must not have those bytes taken for
// the answer to the next request, so the connection is dropped (and the
// request redone on a fresh one when it can be). One non-blocking read per
// reuse, allocation-free, as Go's transport does with its read loop and
// nginx with its cached connections' read events.
func quiet(fd uintptr, scratch []byte) bool {
	for {
		_, e := rawRead(fd, scratch)
		if e != syscall.EINTR {
			return e == syscall.EAGAIN
		}
	}
}

// rawRead reads from the socket fd without the runtime's syscall
// bookkeeping. It is recvfrom, not read: on Linux a socket's read(2) goes
// through the file layer first (about 20 ns more per call).
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, 0, 0)
	return int(n), e
}

// rawWrite writes p (not empty) to the socket fd without the runtime's
// syscall bookkeeping; sendto rather than write for the same reason.
func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, 0, 0)
	return int(n), e
}

// rawConn returns nc's raw connection, or nil when nc has none.
func rawConn(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// flushAndFill writes the buffered request and reads the first bytes of
// the answer into br. werr is a write error (nothing was sent or the
// request was cut); rerr a read error after a complete write, io.EOF when
// the upstream closed without answering.
func (uc *upConn) flushAndFill() (werr, rerr error) {
	if uc.rc == nil {
		if err := uc.bw.Flush(); err != nil {
			return err, nil
		}
		return nil, uc.br.fill(len(uc.br.buf))
	}
	uc.br.r, uc.br.w = 0, 0
	uc.sent, uc.werr, uc.rerr = false, nil, nil
	uc.early = uc.w.early > 0
	if err := uc.rc.Read(uc.readable); err != nil && uc.werr == nil && uc.rerr == nil {
		uc.rerr = err // the deadline passed or the connection was closed while waiting
	}
	return uc.werr, uc.rerr
}

// fillMore goes on waiting for the first bytes of the answer after
// flushAndFill returned at a stall check's deadline.
func (uc *upConn) fillMore() error {
	if uc.rc == nil {
		return uc.br.fill(len(uc.br.buf))
	}
	uc.rerr = nil
	if err := uc.rc.Read(uc.readable); err != nil && uc.werr == nil && uc.rerr == nil {
		uc.rerr = err
	}
	if uc.werr != nil {
		return uc.werr
	}
	return uc.rerr
}

// onReadable is the raw read callback of flushAndFill: called first to
// send, then each time the connection may be readable. It reports whether
// the exchange is done.
func (uc *upConn) onReadable(fd uintptr) bool {
	if !uc.sent {
		uc.sent = true
		if uc.reused && !uc.early && !quiet(fd, uc.br.buf) {
			uc.werr = errNotQuiet
			return true
		}
		if uc.ts != nil {
			uc.ts.enter(fd) // the record layer writes raw; uc.w passes through
		} else {
			uc.w.fd = int(fd)
		}
		err := uc.bw.Flush()
		uc.w.fd = -1
		if uc.ts != nil {
			uc.ts.leave()
		}
		if err != nil {
			uc.werr = err
			return true
		}
		if !uc.early {
			// The whole request left from here, after the poller was
			// armed: no answer can be waiting yet.
			return false
		}
		// Part of the request (a streamed body) left before: the answer,
		// or an early one (a 413 before the body), may be here already
		// and its wakeup is gone, so read first.
	}
	if uc.ts != nil {
		return uc.tlsReadable(fd)
	}
	for {
		n, err := rawRead(fd, uc.br.buf[uc.br.w:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != 0:
			uc.rerr = os.NewSyscallError("read", err)
		case n == 0:
			uc.rerr = io.EOF
		default:
			uc.br.w += n
		}
		return true
	}
}

// tlsReadable reads the first bytes of the answer through the *tls.Conn
// inside the raw callback: its socket reads raw and says "would block"
// (a temporary error, after which tls.Conn keeps the partial record and
// its state) instead of waiting, so no read(2) is wasted before the
// answer is there.
func (uc *upConn) tlsReadable(fd uintptr) bool {
	uc.ts.enter(fd)
	n, err := uc.nc.Read(uc.br.buf[uc.br.w:])
	uc.ts.leave()
	uc.br.w += n
	switch {
	case n > 0:
		return true
	case err == errWouldBlock || err == nil:
		return false
	}
	uc.rerr = err
	return true
}

// tlsSock is the TCP connection under an upstream *tls.Conn. While fd is
// set (inside a raw read callback of the connection) it reads and writes
// with raw system calls like connWriter, and a read that would block
// returns errWouldBlock instead of waiting; otherwise it is the plain
// net.Conn.
type tlsSock struct {
	net.Conn
	// raw is the descriptor + 1 inside a callback, 0 outside. Atomic: a
	// Close from another goroutine (Shutdown, a pool) writes close_notify.
	raw atomic.Int32
	// short is set by each raw read: it left the socket empty.
	short bool
	// probe makes a read inside a callback return errWouldBlock without a
	// system call (conn.tlsRead asks the record layer what it holds).
	probe bool
	// The TLS record framing of the bytes read so far (track): need is
	// what the current record still lacks, hdr/hdrN a partial header.
	need, hdrN int
	hdr        [5]byte
	// reads counts the raw reads (conn.tlsRead resets it); whole says the
	// last one brought exactly one record, starting at a record boundary.
	reads int
	whole bool
}

// track follows the record framing of b, the next bytes read from the
// socket, and returns how many records ended in it.
func (s *tlsSock) track(b []byte) (ended int) {
	for len(b) > 0 {
		if s.need > 0 {
			k := min(s.need, len(b))
			s.need -= k
			b = b[k:]
			if s.need == 0 {
				ended++
			}
			continue
		}
		k := copy(s.hdr[s.hdrN:], b)
		s.hdrN += k
		b = b[k:]
		if s.hdrN == len(s.hdr) {
			s.hdrN, s.need = 0, int(s.hdr[3])<<8|int(s.hdr[4])
			if s.need == 0 {
				ended++
			}
		}
	}
	return ended
}

func (s *tlsSock) aligned() bool { return s.need == 0 && s.hdrN == 0 }

func newTLSSock(nc net.Conn) net.Conn {
	if rawConn(nc) == nil {
		return nc
	}
	return &tlsSock{Conn: nc}
}

func (s *tlsSock) enter(fd uintptr) { s.raw.Store(int32(fd) + 1) }
func (s *tlsSock) leave()           { s.raw.Store(0) }

func (s *tlsSock) Read(p []byte) (int, error) {
	fd := int(s.raw.Load()) - 1
	if fd < 0 || len(p) == 0 {
		n, err := s.Conn.Read(p)
		s.track(p[:max(n, 0)])
		return n, err
	}
	if s.probe {
		return 0, errWouldBlock
	}
	for {
		n, e := rawRead(uintptr(fd), p)
		s.short = n < len(p)
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return 0, errWouldBlock
		case e != 0:
			return 0, os.NewSyscallError("read", e)
		case n == 0:
			return 0, io.EOF
		}
		aligned := s.aligned()
		s.reads++
		s.whole = aligned && s.track(p[:n]) == 1 && s.aligned()
		return n, nil
	}
}

func (s *tlsSock) Write(p []byte) (int, error) {
	n := 0
	fd := int(s.raw.Load()) - 1
	for fd >= 0 && n < len(p) {
		m, e := rawWrite(uintptr(fd), p[n:])
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			break // EAGAIN (the net.Conn waits for room), or an error it reports
		}
		n += m
	}
	if n == len(p) {
		return n, nil
	}
	m, err := s.Conn.Write(p[n:])
	return n + m, err
}

// errWouldBlock is tlsSock's read error inside a callback when the socket
// has nothing: temporary, so tls.Conn does not make it sticky.
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "proxy: read would block" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// serveRaw serves the client connection's requests from inside one raw
// read for as long as each request is self-contained (head and body
// buffered, plain HTTP/1.1 upstream): after a response it waits for the
// next request without trying a read that would return EAGAIN, and since
// the poller's readiness is never reset in between, data that arrived
// meanwhile (a pipelining client) wakes it at once. Anything else leaves
// with a step for the blocking path in serve.
func (c *conn) serveRaw(first bool) rawStep {
	c.rawFirst, c.rawStep, c.rawErr, c.rawHerr = first, rawDone, nil, nil
	if c.ts != nil {
		c.ts.short = false // learnt again after this read's prepare
	}
	c.inRaw = true
	err := c.rc.Read(c.readable)
	c.inRaw = false
	if err != nil {
		c.inHead = false
		c.rawErr, c.rawStep = err, rawHeadErr
	}
	return c.rawStep
}

// onClientReadable is serveRaw's callback; it reports whether serveRaw
// is done (c.rawStep says why).
func (c *conn) onClientReadable(fd uintptr) bool {
	if c.ts != nil {
		c.ts.enter(fd) // the record layer reads and writes raw; c.w passes through
	} else {
		c.w.fd = int(fd)
	}
	done := c.clientReadable(fd)
	c.w.fd = -1
	if c.ts != nil {
		c.ts.leave()
	}
	return done
}

func (c *conn) clientReadable(fd uintptr) bool {
	drained := false // called after a wakeup: the socket may hold data
	for {
		step, more := c.serveBuffered()
		if !more {
			c.rawStep = step
			return true
		}
		if drained {
			if c.br.r == c.br.w {
				c.armIdle()
			}
			return false
		}
		if err := c.br.makeRoom(c.p.cfg.MaxHeaderBytes + 4); err != nil {
			c.rawErr, c.rawStep = err, rawHeadErr
			return true
		}
		space := len(c.br.buf) - c.br.w
		var n int
		var short bool
		if c.ts != nil {
			n, short, c.rawErr = c.tlsRead(c.br.buf[c.br.w:])
			if c.rawErr == errWouldBlock {
				c.rawErr = nil
				drained = true
				continue
			}
		} else {
			var err syscall.Errno
			n, err = rawRead(fd, c.br.buf[c.br.w:])
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				drained = true
				continue
			case err != 0:
				c.rawErr = os.NewSyscallError("read", err)
			case n == 0:
				c.rawErr = io.EOF
			}
			short = n < space
		}
		if c.rawErr != nil {
			if c.br.r < c.br.w && c.rawErr == io.EOF {
				c.rawErr = errUnexpectedEOF
			}
			c.rawStep = rawHeadErr
			return true
		}
		c.br.w += n
		// A short read emptied the socket: further data brings a wakeup.
		drained = short
	}
}

// tlsRead reads decrypted bytes of a TLS client connection into p inside
// the raw callback. drained reports that nothing is left to read without
// a wakeup: the socket's last read was short (it was empty after it) and
// the record layer holds no further record, which a probe read that may
// not touch the socket tells. A read that would block returns
// errWouldBlock.
func (c *conn) tlsRead(p []byte) (n int, drained bool, err error) {
	c.ts.reads = 0
	n, err = c.tc.Read(p)
	if n == 0 {
		if err == nil {
			err = errWouldBlock // len(p) == 0 cannot happen: makeRoom left room
		}
		return 0, false, err
	}
	// n > 0: an error (a close_notify right behind the data) is sticky in
	// tls.Conn and comes back on the next read.
	if !c.ts.short || n == len(p) {
		return n, false, nil
	}
	if c.ts.reads == 1 && c.ts.whole {
		// The socket's one read brought exactly the record whose data
		// this is, onto an empty record layer: nothing is left in it.
		return n, true, nil
	}
	c.ts.probe = true
	m, perr := c.tc.Read(p[n:])
	c.ts.probe = false
	return n + m, m == 0 && perr == errWouldBlock, nil
}
