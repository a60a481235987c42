package main

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
)

// maxHeader bounds a request head; longer heads get 431 and a close.
const maxHeader = 16 << 10

// Server answers HTTP/1.1 requests with a fixed response. It parses just
// enough of RFC 9112 for a benchmark upstream: the request line,
// Content-Length bodies (skipped), Connection: close, HTTP/1.0, and
// pipelined requests (answered with one write per read). Chunked request
// bodies get 501 and a close. It is safe for concurrent use.
type Server struct {
	id    string
	ok    []byte       // the fixed 200 response
	count atomic.Int64 // requests answered, /__count excluded
	conns atomic.Int64 // connections accepted, /__count's included

	// mu guards open and closed.
	mu     sync.Mutex
	open   map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup // one per connection goroutine
}

// NewServer returns a server whose responses carry X-Backend: id.
func NewServer(id string) *Server {
	return &Server{
		id:   id,
		ok:   response("200 OK", id, "ok\n", false),
		open: make(map[net.Conn]struct{}),
	}
}

func response(status, id, body string, closeConn bool) []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 " + status + "\r\nContent-Type: text/plain\r\nContent-Length: ")
	b.WriteString(strconv.Itoa(len(body)))
	b.WriteString("\r\nX-Backend: " + id + "\r\n")
	if closeConn {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n" + body)
	return b.Bytes()
}

// Count returns the number of requests answered so far.
func (s *Server) Count() int64 { return s.count.Load() }

// Conns returns the number of connections accepted so far.
func (s *Server) Conns() int64 { return s.conns.Load() }

// Serve accepts connections on lis until it fails (it returns nil once
// lis is closed). Each connection is served by its own goroutine, which
// Close waits for.
func (s *Server) Serve(lis net.Listener) error {
	for {
		c, err := lis.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if !s.track(c) {
			c.Close()
			return nil
		}
		go s.serveConn(c)
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.open[c] = struct{}{}
	s.conns.Add(1)
	s.wg.Add(1)
	return true
}

// Close closes every open connection and waits for their goroutines. The
// listener is the caller's to close. Close is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.open {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) serveConn(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.open, c)
		s.mu.Unlock()
		c.Close()
		s.wg.Done()
	}()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	buf := make([]byte, 0, 2*maxHeader)
	out := make([]byte, 0, 4096)
	var skip int // body bytes of the current request still to discard
	for {
		n, err := c.Read(buf[len(buf):cap(buf)])
		if n == 0 && err != nil {
			return
		}
		buf = buf[:len(buf)+n]
		var closeConn bool
		out, buf, skip, closeConn = s.handle(out[:0], buf, skip)
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
		if closeConn {
			return
		}
	}
}

// handle answers every complete request in buf, appending the responses to
// out. It returns the unconsumed tail of buf (moved to its start), the body
// bytes still to skip, and whether the connection must be closed.
func (s *Server) handle(out, buf []byte, skip int) ([]byte, []byte, int, bool) {
	p := buf
	for {
		if skip > 0 {
			n := min(skip, len(p))
			p, skip = p[n:], skip-n
			if skip > 0 {
				break
			}
		}
		end := bytes.Index(p, []byte("\r\n\r\n"))
		if end < 0 || end >= maxHeader {
			if end >= maxHeader || len(p) >= maxHeader {
				return append(out, response("431 Request Header Fields Too Large", s.id, "", true)...), buf[:0], 0, true
			}
			break
		}
		req := parseHead(p[:end])
		p = p[end+4:]
		switch {
		case req.bad:
			return append(out, response("400 Bad Request", s.id, "", true)...), buf[:0], 0, true
		case req.chunked:
			return append(out, response("501 Not Implemented", s.id, "", true)...), buf[:0], 0, true
		case req.path == "/__count":
			out = append(out, response("200 OK", s.id, strconv.FormatInt(s.count.Load(), 10)+" "+strconv.FormatInt(s.conns.Load(), 10)+"\n", req.close)...)
		default:
			s.count.Add(1)
			if req.close {
				out = append(out, response("200 OK", s.id, "ok\n", true)...)
			} else {
				out = append(out, s.ok...)
			}
		}
		if req.close {
			return out, buf[:0], 0, true
		}
		skip = req.contentLength
	}
	n := copy(buf, p)
	return out, buf[:n], skip, false
}

// head is what the server needs from a request head.
type head struct {
	path          string
	contentLength int
	close         bool // answer, then close the connection
	chunked       bool
	bad           bool
}

func parseHead(h []byte) head {
	var r head
	line, rest, _ := bytes.Cut(h, []byte("\r\n"))
	parts := bytes.Split(line, []byte(" "))
	if len(parts) != 3 || !bytes.HasPrefix(parts[2], []byte("HTTP/1.")) {
		r.bad = true
		return r
	}
	r.path = string(parts[1])
	http10 := string(parts[2]) == "HTTP/1.0"
	r.close = http10
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			r.bad = true
			return r
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.Atoi(string(value))
			if err != nil || n < 0 {
				r.bad = true
				return r
			}
			r.contentLength = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			r.chunked = !bytes.EqualFold(value, []byte("identity"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				r.close = true
			} else if http10 && bytes.EqualFold(value, []byte("keep-alive")) {
				// HTTP/1.0 keep-alive would need a Connection: keep-alive
				// answer; closing is simpler and still correct.
				r.close = true
			}
		}
	}
	return r
}
