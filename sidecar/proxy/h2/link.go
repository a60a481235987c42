package h2

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Protocol limits and the windows this side advertises.
const (
	// defaultMaxFrameSize is the initial SETTINGS_MAX_FRAME_SIZE (RFC 9113
	// 6.5.2). The proxy never advertises a larger one: frames up to 16 KiB
	// are what every peer sends anyway, and a bound keeps read buffers small.
	defaultMaxFrameSize = 16 << 10
	// initialWindow is the protocol's initial window (RFC 9113 6.9.2).
	initialWindow = 65535
	// maxWindow is the largest legal window (RFC 9113 6.9.1).
	maxWindow = 1<<31 - 1
	// streamWindow is the receive window the proxy grants each stream:
	// the most of one body it holds at a time.
	streamWindow = 256 << 10
	// connWindow is the receive window of a whole connection.
	connWindow = 16 << 20
	// maxBuffered is how many bytes of frames may wait for the write loop
	// before DATA writers are held back (Stream.WriteData returns short).
	maxBuffered = 256 << 10
	// maxControlBuffered closes a connection whose peer makes it queue
	// this much without reading (PING or SETTINGS floods).
	maxControlBuffered = 4 << 20
)

// link is the write side shared by both ends of the proxy: frames of many
// streams are appended to buf under mu and written by one goroutine
// (writeLoop), one write(2) per batch. Its fields are guarded by the
// owning connection's mu.
type link struct {
	nc net.Conn
	mu *sync.Mutex

	buf   []byte // frames waiting for the write loop
	spare []byte // the buffer the write loop last wrote
	fr    *http2.Framer
	enc   *hpack.Encoder
	hbuf  []byte // enc's output
	// peerMaxFrame is the peer's SETTINGS_MAX_FRAME_SIZE.
	peerMaxFrame uint32
	closing      bool // close the connection once buf is written
	closed       bool
	// lingers: after a GOAWAY, shut down the write side only and leave
	// the close to the owner, which reads on (see finish). halfClosed: it
	// did.
	lingers, halfClosed bool
	timedOut            bool // a write failed on the write timeout

	// kick wakes the write loop; it has room for one token.
	kick chan struct{}
	// drained is called (without mu) after a batch is written while
	// writers were held back.
	drained func()
	held    bool
	wd      writeDeadline
}

// appendWriter appends to *b.
type appendWriter struct{ b *[]byte }

func (w appendWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}

func (l *link) init(nc net.Conn, mu *sync.Mutex, writeTimeout time.Duration) {
	l.nc, l.mu = nc, mu
	l.buf = make([]byte, 0, 16<<10)
	l.spare = make([]byte, 0, 16<<10)
	l.fr = http2.NewFramer(appendWriter{&l.buf}, nil)
	l.enc = hpack.NewEncoder(appendWriter{&l.hbuf})
	l.peerMaxFrame = defaultMaxFrameSize
	l.kick = make(chan struct{}, 1)
	l.wd = newWriteDeadline(writeTimeout)
}

// flush wakes the write loop; mu is held.
func (l *link) flush() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// room is how many DATA bytes may still be queued; mu is held.
func (l *link) room() int {
	if l.closing || l.closed {
		return 0
	}
	return max(maxBuffered-len(l.buf), 0)
}

// writeHeaders encodes fields with the connection's HPACK encoder and
// queues them as HEADERS plus CONTINUATION frames; mu is held.
func (l *link) writeHeaders(id uint32, fields []hpack.HeaderField, end bool) {
	l.hbuf = l.hbuf[:0]
	for i := range fields {
		l.enc.WriteField(fields[i])
	}
	l.writeBlock(id, end)
}

// writeBlock queues the encoded block in hbuf; mu is held.
func (l *link) writeBlock(id uint32, end bool) {
	block, max := l.hbuf, int(l.peerMaxFrame)
	first := block[:min(len(block), max)]
	block = block[len(first):]
	l.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: end, EndHeaders: len(block) == 0})
	for len(block) > 0 {
		frag := block[:min(len(block), max)]
		block = block[len(frag):]
		l.fr.WriteContinuation(id, len(block) == 0, frag)
	}
	l.flush()
}

// writeData queues p as DATA frames no larger than the peer allows; mu is
// held. Flow control is the caller's.
func (l *link) writeData(id uint32, p []byte, end bool) {
	for {
		n := min(len(p), int(l.peerMaxFrame))
		l.fr.WriteData(id, end && n == len(p), p[:n])
		p = p[n:]
		if len(p) == 0 {
			break
		}
	}
	l.flush()
}

// control reports whether a control frame may be queued, closing the
// connection when its peer let too much pile up; mu is held.
func (l *link) control() bool {
	if l.closed {
		return false
	}
	if len(l.buf) > maxControlBuffered {
		l.closeLocked()
		return false
	}
	return true
}

// closeLocked closes the connection at once; mu is held.
func (l *link) closeLocked() {
	if !l.closed {
		l.closed = true
		l.nc.Close()
		l.flush()
	} else if l.halfClosed {
		l.nc.Close() // no more lingering
	}
}

// lingerTimeout bounds how long a connection closed after a GOAWAY keeps
// reading what its peer still sends (nginx's lingering close, net/http's
// closeWriteAndWait).
const lingerTimeout = time.Second

// finish ends the write side once the last frames (a GOAWAY) are written:
// a close with unread bytes in the socket (a PING the peer sent before it
// read the GOAWAY) makes the kernel answer with a reset, and a reset can
// destroy the GOAWAY in the peer's receive buffer before the peer reads
// it. So it sends FIN only and lets the reader drain until the peer
// closes or lingerTimeout passes; the owner closes. mu is held.
func (l *link) finish() {
	cw, ok := l.nc.(interface{ CloseWrite() error })
	if !l.lingers || !ok || cw.CloseWrite() != nil {
		l.closeLocked()
		return
	}
	l.closed, l.halfClosed = true, true
	l.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	l.flush()
}

// closeAfterFlush closes the connection once what is queued is written
// (after a GOAWAY); mu is held.
func (l *link) closeAfterFlush() {
	l.closing = true
	l.flush()
}

// writeLoop writes queued frames until the connection closes. It is the
// connection's only writer.
func (l *link) writeLoop() {
	for range l.kick {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return
		}
		b := l.buf
		l.buf, l.spare = l.spare[:0], nil
		closing, held := l.closing, l.held
		l.held = false
		l.mu.Unlock()
		var err error
		if len(b) > 0 {
			_, err = l.wd.write(l.nc, b)
		}
		l.mu.Lock()
		if cap(b) <= 1<<20 {
			l.spare = b[:0]
		} else {
			l.spare = make([]byte, 0, 16<<10)
		}
		if err != nil {
			l.timedOut = l.wd.expired
			if l.timedOut {
				if tc, ok := l.nc.(*net.TCPConn); ok {
					tc.SetLinger(0) // see proxy's conn.endWriteTimedOut
				}
			}
			l.closeLocked()
		} else if closing && len(l.buf) == 0 {
			l.finish()
		} else if len(l.buf) > 0 {
			l.flush()
		}
		done := l.closed
		l.mu.Unlock()
		if held && l.drained != nil {
			l.drained()
		}
		if done {
			return
		}
	}
}

// writeDeadline makes writes fail when no byte could be written for
// timeout, progress-based like the HTTP/1 path's (nginx's send_timeout,
// x/net/http2's WriteByteTimeout); the deadline moves at most once per
// slack.
type writeDeadline struct {
	timeout time.Duration // <= 0: none
	slack   time.Duration
	at      time.Time
	expired bool
}

func newWriteDeadline(timeout time.Duration) writeDeadline {
	return writeDeadline{timeout: timeout, slack: min(time.Second, timeout/4)}
}

func (wd *writeDeadline) write(nc net.Conn, p []byte) (int, error) {
	if wd.timeout <= 0 {
		return nc.Write(p)
	}
	n := 0
	for {
		if d := time.Now().Add(wd.timeout); d.Sub(wd.at) > wd.slack {
			nc.SetWriteDeadline(d)
			wd.at = d
		}
		m, err := nc.Write(p[n:])
		n += m
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if m == 0 {
			wd.expired = true
			return n, err
		}
	}
}
