package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/net/http2/hpack"

	"github.com/shoal-mesh/shoal/sidecar/proxy/h2"
)

// errStreamReset is what a request body read returns after the client
// reset its stream.
var errStreamReset = errors.New("proxy: client reset the stream")

// h2Front serves the streams of one downstream h2c connection on the
// net/http forwarding path (h2Handler.serveHTTP): one goroutine per
// stream, joined in wait.
type h2Front struct {
	h  *h2Handler
	hc *h2Conn
	wg sync.WaitGroup
}

// ServeStream forwards a stream routed to an HTTP2 cluster frame by
// frame (h2Fwd); others (HTTP/1.1 clusters, local replies) run on their
// own goroutine through net/http (streamAdapter).
func (f *h2Front) ServeStream(s *h2.Stream) {
	if fw, ok := f.newH2Fwd(s); ok {
		fw.run()
		return
	}
	a := &streamAdapter{s: s, hdr: make(http.Header)}
	a.cond.L = &a.mu
	a.ctx, a.cancel = context.WithCancel(context.Background())
	s.SetSink(a)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer a.cancel()
		a.serve(f)
	}()
}

func (f *h2Front) wait() { f.wg.Wait() }

// streamAdapter presents an h2.Stream as an http.Request body and an
// http.ResponseWriter to h2Handler.serveHTTP. The Sink methods run on the
// connection's goroutines; the rest on the stream's.
type streamAdapter struct {
	s      *h2.Stream
	ctx    context.Context
	cancel context.CancelFunc
	req    *http.Request

	// mu guards the fields below; cond (on mu) signals a change.
	mu      sync.Mutex
	cond    sync.Cond
	body    []byte // received and not yet read
	off     int
	end     bool
	reset   bool
	writeOK uint64 // counts OnWritable

	hdr         http.Header
	status      int
	headersSent bool
}

func (a *streamAdapter) OnData(s *h2.Stream, p []byte, end bool) {
	a.mu.Lock()
	if a.off == len(a.body) {
		a.body, a.off = a.body[:0], 0
	}
	a.body = append(a.body, p...)
	a.end = a.end || end
	a.cond.Broadcast()
	a.mu.Unlock()
}

func (a *streamAdapter) OnReset(s *h2.Stream) {
	a.mu.Lock()
	a.reset = true
	a.cond.Broadcast()
	a.mu.Unlock()
	a.cancel()
}

func (a *streamAdapter) OnWritable(s *h2.Stream) {
	a.mu.Lock()
	a.writeOK++
	a.cond.Broadcast()
	a.mu.Unlock()
}

// Read reads the request body.
func (a *streamAdapter) Read(p []byte) (int, error) {
	a.mu.Lock()
	for a.off == len(a.body) && !a.end && !a.reset {
		a.cond.Wait()
	}
	if a.reset {
		a.mu.Unlock()
		return 0, errStreamReset
	}
	n := copy(p, a.body[a.off:])
	a.off += n
	eof := a.end && a.off == len(a.body)
	a.mu.Unlock()
	if n > 0 {
		a.s.Consumed(n)
	}
	if eof {
		a.fillTrailers()
		return n, io.EOF
	}
	return n, nil
}

func (a *streamAdapter) Close() error { return nil }

func (a *streamAdapter) fillTrailers() {
	for _, f := range a.s.Trailers {
		k := http.CanonicalHeaderKey(f.Name)
		if a.req.Trailer == nil {
			a.req.Trailer = make(http.Header)
		}
		a.req.Trailer[k] = append(a.req.Trailer[k], f.Value)
	}
}

// serve builds the request and runs it through h2Handler.serveHTTP.
func (a *streamAdapter) serve(f *h2Front) {
	s := a.s
	u, err := url.ParseRequestURI(s.Path)
	if s.Method == "OPTIONS" && s.Path == "*" {
		u, err = &url.URL{Path: "*"}, nil
	}
	if err != nil || s.Method == "CONNECT" {
		plainError(a, 400, "bad request target")
		a.finish()
		return
	}
	hd := make(http.Header, len(s.Fields))
	var cookies []string
	for _, fl := range s.Fields {
		if fl.Name == "cookie" {
			cookies = append(cookies, fl.Value) // 8.2.3: one field again
			continue
		}
		k := http.CanonicalHeaderKey(fl.Name)
		hd[k] = append(hd[k], fl.Value)
	}
	if len(cookies) > 0 {
		hd["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	host := s.Authority
	if host == "" {
		host = hd.Get("Host")
	}
	r := &http.Request{Method: s.Method, URL: u, Proto: "HTTP/2.0", ProtoMajor: 2, Header: hd, Host: host,
		RequestURI: s.Path, ContentLength: s.ContentLength, Body: a}
	for _, k := range hd.Values("Trailer") {
		for tok := range strings.SplitSeq(k, ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				if r.Trailer == nil {
					r.Trailer = make(http.Header)
				}
				r.Trailer[http.CanonicalHeaderKey(tok)] = nil
			}
		}
	}
	if s.Ended {
		r.Body, r.ContentLength = http.NoBody, 0
	}
	a.req = r.WithContext(a.ctx)
	f.h.serveHTTP(a, a.req, f.hc)
	a.finish()
}

// Header, WriteHeader, Write and Flush make the adapter an
// http.ResponseWriter and http.Flusher.
func (a *streamAdapter) Header() http.Header { return a.hdr }

func (a *streamAdapter) WriteHeader(code int) {
	if a.status == 0 {
		a.status = code
	}
}

func (a *streamAdapter) Write(p []byte) (int, error) {
	a.sendHeaders(false)
	written := 0
	for len(p) > 0 {
		a.mu.Lock()
		gen := a.writeOK
		a.mu.Unlock()
		n, err := a.s.WriteData(p, false)
		written += n
		p = p[n:]
		if err != nil {
			return written, err
		}
		if len(p) == 0 {
			break
		}
		a.mu.Lock()
		for a.writeOK == gen && !a.reset {
			a.cond.Wait()
		}
		reset := a.reset
		a.mu.Unlock()
		if reset {
			return written, h2.ErrStreamClosed
		}
	}
	return written, nil
}

func (a *streamAdapter) Flush() { a.sendHeaders(false) }

// sendHeaders sends the response headers once; end ends the response with
// them (a gRPC trailers-only response).
func (a *streamAdapter) sendHeaders(end bool) {
	if a.headersSent {
		return
	}
	a.headersSent = true
	if a.status == 0 {
		a.status = 200
	}
	fields := appendFields(nil, a.hdr, false)
	if end {
		fields = appendFields(fields, a.hdr, true)
	}
	a.s.WriteHeaders(a.status, fields, end)
}

// finish ends the response: trailers when the handler set any, else an
// empty DATA frame with END_STREAM, or the headers alone.
func (a *streamAdapter) finish() {
	if !a.headersSent {
		a.sendHeaders(true)
		return
	}
	if tr := appendFields(nil, a.hdr, true); len(tr) > 0 {
		a.s.WriteTrailers(tr)
		return
	}
	a.s.WriteData(nil, true)
}

// appendFields appends the fields of hd: the response headers, or with
// trailers the trailers (keys declared in Trailer, or http.TrailerPrefix).
func appendFields(dst []hpack.HeaderField, hd http.Header, trailers bool) []hpack.HeaderField {
	declared := map[string]bool{}
	for _, v := range hd["Trailer"] {
		for tok := range strings.SplitSeq(v, ",") {
			declared[http.CanonicalHeaderKey(strings.TrimSpace(tok))] = true
		}
	}
	for k, vs := range hd {
		name, isTrailer := k, declared[k]
		if rest, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			name, isTrailer = rest, true
		}
		if isTrailer != trailers || !trailers && k == "Trailer" {
			continue
		}
		switch http.CanonicalHeaderKey(name) {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te":
			continue
		}
		name = strings.ToLower(name)
		for _, v := range vs {
			dst = append(dst, hpack.HeaderField{Name: name, Value: v})
		}
	}
	return dst
}
