package proxy

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/url"
	"time"
)

// forwardViaTransport serves an HTTP/1.1 request through net/http
// transports: to HTTP2 (h2c, gRPC) clusters, and WebSocket upgrades, with
// the route's retry policy as on the h2c path (h2Handler.roundTrip). It is
// the slow path; the fast path is forward.
func (c *conn) forwardViaTransport(a *attempt) (int, bool) {
	x := &transportExchange{a: *a}
	defer x.a.release() // the copy takes the retry slot
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if c.req.upgrade {
		x.a.deadline = time.Time{} // the route timeout does not bound a tunnel
	} else if !x.a.deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, x.a.deadline)
		defer cancel()
	}
	// c.req's byte slices point into the client buffer, which the chunked
	// body decoder refills once toHTTPRequest started it.
	idempotent, head := c.req.idempotent(), string(c.req.method) == "HEAD"
	out, body := c.toHTTPRequest(ctx)
	defer body.finish()
	x.setBody(out.Body, out.ContentLength, c.p.cfg.ReplayBufferBytes)
	defer x.end()
	if c.req.expectContinue && c.req.hasBody() {
		c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		c.bw.Flush()
	}
	res, code, msg := c.p.h2.roundTrip(ctx, out, x, idempotent)
	if res == nil {
		c.bodyDone = x.bodyDone(body) // else localReply closes the connection
		return code, c.localReply(code, msg)
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusSwitchingProtocols {
		return 101, c.splice(res)
	}
	closeClient := c.req.closeConn || c.p.shutting.Load() || (res.ContentLength < 0 && c.req.minor == 0)
	res.Proto, res.ProtoMajor, res.ProtoMinor = "HTTP/1.1", 1, 1
	if c.req.minor == 0 && res.ContentLength < 0 {
		res.TransferEncoding = nil
	}
	for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Upgrade", "Te"} {
		res.Header.Del(k)
	}
	if c.mode.Kind != Inbound {
		stripLoadHeaders(res.Header) // issue 17
	}
	res.Close = closeClient
	if head {
		res.Body = http.NoBody
	}
	err := res.Write(flushWriter{c.bw})
	if err == nil {
		err = c.bw.Flush()
	}
	return res.StatusCode, err == nil && !closeClient && x.bodyDone(body)
}

// bodyDone reports whether the client's body was read completely, so the
// connection can carry another request. With a replayBody it asks it:
// the transport of an abandoned attempt may still be reading body.
func (x *transportExchange) bodyDone(body *bodyReader) bool {
	if x.body != nil {
		return x.body.complete()
	}
	return body.done()
}

// flushWriter flushes after every write so that streamed responses are
// not held back in the client buffer.
type flushWriter struct{ w *bufio.Writer }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.w.Flush()
	}
	return n, err
}

// toHTTPRequest converts the parsed request into a net/http request whose
// body streams from the client connection.
func (c *conn) toHTTPRequest(ctx context.Context) (*http.Request, *bodyReader) {
	r := &c.req
	hd := make(http.Header, len(r.headers)+4)
	for i := range r.headers {
		f := &r.headers[i]
		if classify(f.Name) == hdrHost {
			continue
		}
		hd.Add(string(f.Name), string(f.Value))
	}
	upgrade := hd.Get("Upgrade")
	rewriteHeaders(hd, c.trusted, string(c.peerIP))
	setXFCC(hd, c.mode, c.xfcc())
	if r.upgrade {
		hd.Set("Connection", "Upgrade")
		hd.Set("Upgrade", upgrade)
	}
	hd.Del("Expect")
	u := &url.URL{Scheme: "http", Host: "upstream", Opaque: string(r.target)}
	body := &bodyReader{c: c, n: r.contentLength}
	out := (&http.Request{
		Method: string(r.method), URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: hd, Host: string(r.host), ContentLength: max(r.contentLength, 0),
	}).WithContext(ctx)
	if r.chunked {
		out.ContentLength = -1
		body.startChunked()
	}
	if r.hasBody() {
		out.Body = body
	}
	c.bodyConsumed = r.hasBody()
	return out, body
}

// bodyReader streams the request body: a Content-Length body straight from
// the client buffer, a chunked body through the strict decoder running in a
// goroutine owned by the request (joined in finish).
type bodyReader struct {
	c      *conn
	n      int64 // remaining Content-Length bytes; -1 when chunked
	pr     *io.PipeReader
	doneCh chan error
	err    error
}

func (b *bodyReader) startChunked() {
	pr, pw := io.Pipe()
	b.pr, b.doneCh = pr, make(chan error, 1)
	go func() {
		w := bufio.NewWriter(pw)
		err := copyChunked(w, &b.c.br, false)
		if err == nil {
			err = w.Flush()
		}
		pw.CloseWithError(err)
		b.doneCh <- err
	}()
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.pr != nil {
		return b.pr.Read(p)
	}
	if b.n <= 0 {
		return 0, io.EOF
	}
	n, err := b.c.br.Read(p[:min(int64(len(p)), b.n)])
	b.n -= int64(n)
	if err == io.EOF && b.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Close is called by the transport; the decoder goroutine is joined by
// finish, which the connection goroutine always calls.
func (b *bodyReader) Close() error { return nil }

// finish stops and joins the chunked decoder.
func (b *bodyReader) finish() {
	if b.pr == nil || b.doneCh == nil {
		return
	}
	b.pr.Close()
	select {
	case b.err = <-b.doneCh:
	default:
		// The decoder may be blocked reading the client: unblock it. The
		// connection is not reused after an unfinished body.
		b.c.nc.SetReadDeadline(time.Unix(1, 0))
		b.err = <-b.doneCh
		b.c.rdl = time.Time{}
	}
	b.doneCh = nil
}

// done reports whether the body was read completely, so the connection
// can carry another request. It joins the decoder first.
func (b *bodyReader) done() bool {
	if b.pr != nil {
		b.finish()
		return b.err == nil
	}
	return b.n <= 0
}
