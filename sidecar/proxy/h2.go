package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/shoal-mesh/shoal/sidecar/accesslog"
	"github.com/shoal-mesh/shoal/sidecar/proxy/h2"
	"github.com/shoal-mesh/shoal/sidecar/route"
	"github.com/shoal-mesh/shoal/sidecar/tracing"
)

// h2Preface is the head bufReader.head returns for the HTTP/2 connection
// preface ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", RFC 9113 3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\n"

// h2Handler serves h2c prior-knowledge connections with the frame-level
// server of package h2 and forwards their streams through net/http
// transports: h2c to HTTP2 clusters (gRPC), HTTP/1.1 otherwise.
type h2Handler struct {
	p   *Proxy
	h2t *http2.Transport
	h1t *http.Transport
	// bufs holds *[]byte response copy buffers (copyResponse), as
	// httputil.ReverseProxy's BufferPool.
	bufs sync.Pool
	// fwds holds *h2Fwd, the per-stream state of the frame-level path.
	fwds sync.Pool

	// mu guards conns and shutting.
	mu       sync.Mutex
	conns    map[*h2.ServerConn]struct{}
	shutting bool
}

func newH2Handler(p *Proxy) *h2Handler {
	h := &h2Handler{p: p, conns: make(map[*h2.ServerConn]struct{})}
	dialer := &net.Dialer{}
	h.h2t = &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return p.dialTransport(ctx, dialer, network, addr, "h2")
		},
		ReadIdleTimeout: 30 * time.Second,
	}
	h.h1t = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return p.dialTransport(ctx, dialer, network, addr, "http/1.1")
		},
		MaxIdleConnsPerHost: p.cfg.MaxIdlePerHost,
		IdleConnTimeout:     p.cfg.UpstreamIdleTimeout,
		DisableCompression:  true,
	}
	h.fwds.New = func() any { return new(h2Fwd) }
	h.bufs.New = func() any {
		b := make([]byte, 32<<10)
		return &b
	}
	return h
}

// serveConn serves an h2c connection whose preface head c has read.
func (h *h2Handler) serveConn(c *conn) {
	c.nc.SetReadDeadline(time.Time{})
	hc := &h2Conn{mode: c.mode, peerIP: c.peerIP, peer: string(c.peerIP), fixed: c.fixed, trusted: c.trusted, xfcc: c.xfcc(), caller: c.callerID()}
	front := &h2Front{h: h, hc: hc}
	sc := h2.NewServerConn(c.nc, c.br.buffered(), h2.ServerConfig{
		// The first request's HEADERS must come as soon as an HTTP/1
		// request head must (slowloris).
		HeadTimeout:  h.p.cfg.ReadHeaderTimeout,
		IdleTimeout:  h.p.cfg.IdleTimeout,
		WriteTimeout: h.p.cfg.WriteTimeout,
		// Header limits as on HTTP/1 (431 beyond).
		MaxHeaderBytes: h.p.cfg.MaxHeaderBytes,
	}, front)
	if !h.track(sc, true) {
		return
	}
	timedOut := sc.Serve()
	h.track(sc, false)
	front.wait()
	if timedOut {
		c.writeTimedOut()
	}
}

func (h *h2Handler) track(sc *h2.ServerConn, add bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !add {
		delete(h.conns, sc)
		return true
	}
	if h.shutting {
		return false
	}
	h.conns[sc] = struct{}{}
	return true
}

// shutdown sends GOAWAY on every h2c connection; streams in flight finish.
func (h *h2Handler) shutdown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.shutting = true
	for sc := range h.conns {
		sc.Shutdown()
	}
}

func (h *h2Handler) close() {
	h.h2t.CloseIdleConnections()
	h.h1t.CloseIdleConnections()
}

// h2Conn is what the requests of one h2c connection share. Read only.
type h2Conn struct {
	mode   Mode
	peerIP []byte // conn.peerIP
	peer   string // peerIP as a string
	fixed  []byte // conn.fixed
	// trusted is conn.trusted: the peer's X-Forwarded-* are kept.
	trusted bool
	// xfcc is conn.xfcc().
	xfcc string
	// caller is conn.callerID().
	caller string
}

// serveHTTP routes and forwards one request of an h2c connection.
func (h *h2Handler) serveHTTP(w http.ResponseWriter, r *http.Request, hc *h2Conn) {
	start := time.Now()
	b := h.p.bound.Load()
	x := &h2Exchange{}
	x.fillView(r, hc.peerIP)
	if t := h.p.cfg.Tracer; t != nil {
		x.startSpan(t, r)
	}
	rt, cl := resolve(b.table, hc.mode, &x.view, hc.fixed)
	cs := h.p.noCluster
	if cl != nil {
		cs = b.clusters[cl.Index]
	}
	var code int
	if reason := inboundDenied(b.table, hc.mode, hc.caller, &x.view); reason != "" {
		code = writeDenied(w, r, reason)
	} else {
		code = h.forward(w, r, x, b, rt, cl, cs, hc, start)
	}
	cs.codes.inc(code)
	took := time.Since(start)
	cs.latency.observe(cs.name, took.Seconds())
	countEdge(hc.mode, cs, rt, code, took.Seconds())
	if l := h.p.cfg.AccessLog; l != nil {
		x.logAccess(l, r, start, took, code, cs.name)
	}
	if t := h.p.cfg.Tracer; t != nil {
		x.span.end(t, hc.mode.Kind, start, x.view.Method, x.view.Path, code, x.al.upstream, cs.name)
	}
}

// h2Exchange is the state of one request of an h2c connection, allocated
// once: the forwarding state and the routing view of the request, whose
// strings are copied into scratch (route.Request holds byte slices).
type h2Exchange struct {
	transportExchange
	reqID   string // the X-Request-Id sent upstream
	span    spanInfo
	view    route.Request
	fields  [24]route.HeaderField
	scratch [1 << 10]byte
}

// fillView fills x.view from r.
func (x *h2Exchange) fillView(r *http.Request, peer []byte) {
	n, nf := len(r.Host)+len(r.Method)+len(r.URL.Path), 0
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v)
			nf++
		}
	}
	buf := x.scratch[:0]
	if n > len(x.scratch) {
		buf = make([]byte, 0, n)
	}
	fields := x.fields[:0]
	if nf > len(x.fields) {
		fields = make([]route.HeaderField, 0, nf)
	}
	str := func(s string) []byte {
		buf = append(buf, s...)
		return buf[len(buf)-len(s) : len(buf) : len(buf)]
	}
	x.view = route.Request{Host: str(r.Host), Method: str(r.Method), Path: str(r.URL.Path), SourceIP: peer}
	for k, vs := range r.Header {
		for _, v := range vs {
			fields = append(fields, route.HeaderField{Name: str(k), Value: str(v)})
		}
	}
	x.view.Headers = fields
}

func (h *h2Handler) forward(w http.ResponseWriter, r *http.Request, x *h2Exchange, b *binding, rt *route.Route, cl *route.Cluster, cs *clusterState, hc *h2Conn, start time.Time) int {
	switch {
	case rt == nil && cl == nil:
		x.al.flags |= accesslog.NoRouteFound
		return plainError(w, 404, notFoundMessage(b.table, x.view.Host, []byte(r.URL.Path)))
	case cl == nil:
		return plainError(w, 503, "cluster not found")
	case int(cs.inflight.Add(1)) > cl.MaxRequests:
		cs.inflight.Add(-1)
		x.al.flags |= accesslog.UpstreamOverflow
		return plainError(w, 503, "upstream overflow (circuit breaker)")
	}
	defer cs.inflight.Add(-1)
	a := &x.a
	a.init(b, rt, cl, start, h.p.cfg.ConnectRetries)
	a.idempotent = idempotentMethod(r.Method) // a stalled host may be probed by it
	defer a.release()
	if rt != nil {
		if hk, ok := rt.HashKey(&x.view); ok {
			a.info.SetHash(hk)
		}
	}
	ctx := r.Context()
	if !a.deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, a.deadline)
		defer cancel()
	}
	out := r.WithContext(ctx) // the fields r.Clone copies deeply are replaced or nil
	x.url = *r.URL
	out.URL, out.RequestURI, out.Close = &x.url, "", false
	out.Header = cloneHeader(r.Header, 4)
	out.Trailer = r.Trailer.Clone()
	rewriteHeaders(out.Header, hc.trusted, hc.peer)
	if x.span.on {
		delete(out.Header, "Traceparent")
		out.Header["Traceparent"] = []string{string(tracing.AppendTraceparent(nil, x.span.ctx))}
	}
	if vs := out.Header["X-Request-Id"]; len(vs) > 0 {
		x.reqID = vs[0] // the client's or a generated one, for the access log
	}
	setXFCC(out.Header, hc.mode, hc.xfcc)
	x.setBody(r.Body, r.ContentLength, h.p.cfg.ReplayBufferBytes)
	defer x.end()
	res, code, msg := h.roundTrip(ctx, out, &x.transportExchange, idempotentMethod(r.Method))
	if res == nil {
		if code == http.StatusGatewayTimeout && x.al.flags&accesslog.UpstreamStalled != 0 {
			w.Header().Set(stalledHeader, "1") // its endpoint is stuck (a sidecar contract)
		}
		return plainError(w, code, msg)
	}
	defer res.Body.Close()
	if hc.mode.Kind != Inbound {
		stripLoadHeaders(res.Header) // the report leaves the mesh without it (issue 17)
	}
	return h.copyResponse(w, res)
}

// stripLoadHeaders removes the ORCA load report headers (see isORCAHeader).
func stripLoadHeaders(hd http.Header) {
	for _, k := range []string{"Endpoint-Load-Metrics", "Endpoint-Load-Metrics-Bin", "Endpoint-Load-Metrics-Json"} {
		delete(hd, k)
	}
}

// cloneHeader is http.Header.Clone with room for extra more keys.
func cloneHeader(hd http.Header, extra int) http.Header {
	nv := 0
	for _, vs := range hd {
		nv += len(vs)
	}
	sv := make([]string, nv) // one backing array for all values
	out := make(http.Header, len(hd)+extra)
	for k, vs := range hd {
		if vs == nil {
			out[k] = nil // a nil value stays nil (Header.Clone)
			continue
		}
		n := copy(sv, vs)
		out[k] = sv[:n:n]
		sv = sv[n:]
	}
	return out
}

// rewriteHeaders applies the HTTP/1 path's forwarding rules to a header map.
func rewriteHeaders(hd http.Header, trusted bool, peer string) {
	for _, f := range hd["Connection"] {
		for tok := range strings.SplitSeq(f, ",") {
			hd.Del(strings.TrimSpace(tok))
		}
	}
	te := hd.Get("Te")
	for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Transfer-Encoding", "Upgrade", "Proxy-Authorization"} {
		delete(hd, k)
	}
	// The values set below share one backing array, each capped so that
	// an append copies.
	vals := make([]string, 0, 4)
	set := func(k, v string) {
		vals = append(vals, v)
		hd[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	if strings.Contains(strings.ToLower(te), "trailers") {
		set("Te", "trailers")
	}
	xff := peer
	if prior := hd["X-Forwarded-For"]; trusted && len(prior) > 0 {
		xff = strings.Join(prior, ", ") + ", " + peer
	}
	if !trusted {
		for _, k := range []string{"X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"} {
			delete(hd, k)
		}
	}
	set("X-Forwarded-For", xff)
	if hd.Get("X-Forwarded-Proto") == "" {
		set("X-Forwarded-Proto", "http")
	}
	if hd.Get("X-Request-Id") == "" {
		var id [36]byte
		set("X-Request-Id", string(appendRequestID(id[:0])))
	}
}

// copyResponse relays res to w with trailers and a flush after every read
// (streaming RPCs), in the manner of httputil.ReverseProxy.
func (h *h2Handler) copyResponse(w http.ResponseWriter, res *http.Response) int {
	wh := w.Header()
	for k, vs := range res.Header {
		switch http.CanonicalHeaderKey(k) { // no allocation for canonical keys
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te":
			continue
		}
		wh[k] = vs
	}
	announced := len(res.Trailer)
	for k := range res.Trailer {
		wh.Add("Trailer", k)
	}
	w.WriteHeader(res.StatusCode)
	flusher, _ := w.(http.Flusher)
	if flusher != nil && res.Header.Get("Grpc-Status") == "" {
		// Send headers now for streams; a gRPC trailers-only response
		// must instead end with its HEADERS frame (END_STREAM).
		flusher.Flush()
	}
	bp := h.bufs.Get().(*[]byte)
	ok := copyFlushing(w, flusher, res.Body, *bp)
	h.bufs.Put(bp)
	if !ok {
		return res.StatusCode // the client is gone
	}
	res.Body.Close()
	for k, vs := range res.Trailer {
		if len(res.Trailer) != announced {
			k = http.TrailerPrefix + k
		}
		wh[k] = vs
	}
	return res.StatusCode
}

// copyFlushing copies body to w through buf, flushing after every write.
// It reports false when writing to w failed.
func copyFlushing(w io.Writer, flusher http.Flusher, body io.Reader, buf []byte) bool {
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return false
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			return true
		}
	}
}

func plainError(w http.ResponseWriter, code int, msg string) int {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
	return code
}
