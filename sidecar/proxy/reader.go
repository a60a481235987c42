package proxy

import (
	"bytes"
	"errors"
	"io"
)

// Errors of head reading; the connection loop maps them to status codes.
var (
	errHeadTooLarge  = errors.New("proxy: header section too large")
	errLineTooLong   = errors.New("proxy: request line too long")
	errUnexpectedEOF = io.ErrUnexpectedEOF
)

// bufReader is a reusable read buffer over one connection. It hands out
// slices of its buffer (zero copy); a slice stays valid until the next call
// that reads from the connection. It is owned by one goroutine.
type bufReader struct {
	rd   io.Reader
	buf  []byte
	r, w int // unread bytes are buf[r:w]

	// The head being received: bytes already scanned for its end, and
	// whether its start was reported (head's started).
	scanned int
	began   bool
}

// buffered returns the unread bytes without reading.
func (b *bufReader) buffered() []byte { return b.buf[b.r:b.w] }

// discard drops n buffered bytes; n must not exceed len(buffered()).
func (b *bufReader) discard(n int) { b.r += n }

// fill reads at least one byte from the connection, compacting or growing
// the buffer (up to limit bytes) when it is full. It returns errHeadTooLarge
// when the unread bytes already fill limit.
func (b *bufReader) fill(limit int) error {
	if err := b.makeRoom(limit); err != nil {
		return err
	}
	n, err := b.rd.Read(b.buf[b.w:])
	b.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// makeRoom makes buf[w:] non-empty, compacting or growing the buffer (up
// to limit bytes) when it is full. It returns errHeadTooLarge when the
// unread bytes already fill limit.
func (b *bufReader) makeRoom(limit int) error {
	if b.r == b.w {
		b.r, b.w = 0, 0
	}
	if b.w < len(b.buf) {
		return nil
	}
	if b.r > 0 {
		b.w = copy(b.buf, b.buf[b.r:b.w])
		b.r = 0
		return nil
	}
	if len(b.buf) >= limit {
		return errHeadTooLarge
	}
	nb := make([]byte, min(2*len(b.buf), limit))
	b.w = copy(nb, b.buf[b.r:b.w])
	b.r = 0
	b.buf = nb
	return nil
}

// head returns the next message head up to and including its terminating
// empty line, reading as needed. Leading CRLFs are skipped (RFC 9112 2.2).
// maxLine bounds the first line (errLineTooLong) and maxHead the head
// (errHeadTooLarge). A bare LF ends lines here; the parser rejects it.
// started is called once when part of a head is buffered and more must be
// read (for ReadHeaderTimeout); a head that arrives whole never calls it.
func (b *bufReader) head(maxLine, maxHead int, started func()) ([]byte, error) {
	for {
		h, err := b.bufferedHead(maxLine, maxHead, started)
		if h != nil || err != nil {
			return h, err
		}
		if err := b.fill(maxHead + 4); err != nil {
			if err == io.EOF && b.r < b.w {
				return nil, errUnexpectedEOF
			}
			return nil, err
		}
	}
}

// bufferedHead is head without reading: it returns nil and no error when
// the buffered bytes hold no complete head yet (see head for the rest).
func (b *bufReader) bufferedHead(maxLine, maxHead int, started func()) ([]byte, error) {
	for b.w-b.r >= 2 && b.buf[b.r] == '\r' && b.buf[b.r+1] == '\n' {
		b.r += 2
	}
	data := b.buf[b.r:b.w]
	if nl := bytes.IndexByte(data, '\n'); (nl < 0 && len(data) > maxLine) || nl > maxLine {
		b.scanned, b.began = 0, false
		return nil, errLineTooLong
	}
	if end := headEnd(data, b.scanned); end > 0 {
		b.r += end
		b.scanned, b.began = 0, false
		return data[:end], nil
	}
	b.scanned = max(0, len(data)-3)
	if len(data) >= maxHead {
		b.scanned, b.began = 0, false
		return nil, errHeadTooLarge
	}
	if len(data) > 0 && !b.began {
		b.began = true
		if started != nil {
			started()
		}
	}
	return nil, nil
}

// headEnd returns the length of the head in data (through "\n\r\n" or
// "\n\n"), or 0 when data holds no complete head. Scanning restarts at from.
func headEnd(data []byte, from int) int {
	for i := from; i < len(data); {
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			return 0
		}
		i += j + 1
		if i < len(data) && data[i] == '\n' {
			return i + 1
		}
		if i+1 < len(data) && data[i] == '\r' && data[i+1] == '\n' {
			return i + 2
		}
	}
	return 0
}

// Read implements io.Reader: buffered bytes first, then the connection.
func (b *bufReader) Read(p []byte) (int, error) {
	if b.r == b.w {
		if len(p) >= len(b.buf) {
			return b.rd.Read(p)
		}
		if err := b.fill(len(b.buf)); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}

// readLine returns the next line including its LF, up to max bytes.
func (b *bufReader) readLine(max int) ([]byte, error) {
	for {
		data := b.buf[b.r:b.w]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			if i+1 > max {
				return nil, errLineTooLong
			}
			b.r += i + 1
			return data[:i+1], nil
		}
		if len(data) >= max {
			return nil, errLineTooLong
		}
		if err := b.fill(max + 1); err != nil {
			if err == io.EOF {
				err = errUnexpectedEOF
			}
			return nil, err
		}
	}
}
