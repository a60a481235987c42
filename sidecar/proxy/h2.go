package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// h2Preface is the head bufReader.head returns for the HTTP/2 connection
// preface ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", RFC 9113 3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\n"

// h2Handler serves h2c prior-knowledge connections with x/net/http2 and
// forwards through net/http transports: h2c to HTTP2 clusters (gRPC), HTTP/1.1
// otherwise. This path favours correctness (trailers, streaming, flow
// control) over the allocation-free HTTP/1.1 fast path.
type h2Handler struct {
	p    *Proxy
	srv  *http2.Server
	base *http.Server // carries graceful shutdown to http2 connections
	h2t  *http2.Transport
	h1t  *http.Transport
}

func newH2Handler(p *Proxy) *h2Handler {
	// WriteByteTimeout is progress-based like the HTTP/1 path's write
	// timeout. It cuts off a client that stops reading while its
	// flow-control window is open; a closed window stalls the stream
	// without pending writes.
	base := &http.Server{HTTP2: &http.HTTP2Config{WriteByteTimeout: max(p.cfg.WriteTimeout, 0)}}
	h := &h2Handler{p: p, base: base, srv: &http2.Server{
		IdleTimeout:          p.cfg.IdleTimeout,
		MaxConcurrentStreams: 250,
		MaxReadFrameSize:     1 << 20,
	}}
	http2.ConfigureServer(h.base, h.srv)
	dialer := &net.Dialer{}
	h.h2t = &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		ReadIdleTimeout: 30 * time.Second,
	}
	h.h1t = &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: p.cfg.MaxIdlePerHost,
		IdleConnTimeout:     p.cfg.UpstreamIdleTimeout,
		DisableCompression:  true,
	}
	return h
}

// serveConn serves an h2c connection whose preface head c has read.
func (h *h2Handler) serveConn(c *conn) {
	c.nc.SetReadDeadline(time.Time{})
	rest := append([]byte(h2Preface), c.br.buffered()...)
	nc := &prefixConn{Conn: c.nc, r: io.MultiReader(bytes.NewReader(rest), c.nc)}
	mode, peer := c.mode, string(c.peerIP)
	h.srv.ServeConn(nc, &http2.ServeConnOpts{
		BaseConfig: h.base,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.serveHTTP(w, r, mode, peer)
		}),
	})
	if nc.writeTimedOut.Load() {
		c.writeTimedOut()
	}
}

// shutdown sends GOAWAY on every h2c connection; streams in flight finish.
func (h *h2Handler) shutdown() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h.base.Shutdown(ctx)
}

func (h *h2Handler) close() {
	h.h2t.CloseIdleConnections()
	h.h1t.CloseIdleConnections()
}

// prefixConn replays bytes already read from a connection, and notes a
// write that failed on the server's WriteByteTimeout.
type prefixConn struct {
	net.Conn
	r             io.Reader
	writeTimedOut atomic.Bool
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Write sets a reset-on-close (see conn.endWriteTimedOut) before the
// server closes the connection after a write timeout.
func (c *prefixConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if errors.Is(err, os.ErrDeadlineExceeded) && !c.writeTimedOut.Swap(true) {
		if tc, ok := c.Conn.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
	}
	return n, err
}

// serveHTTP routes and forwards one request of an h2c connection.
func (h *h2Handler) serveHTTP(w http.ResponseWriter, r *http.Request, mode Mode, peer string) {
	start := time.Now()
	b := h.p.bound.Load()
	v := route.Request{Host: []byte(r.Host), Method: []byte(r.Method), Path: []byte(r.URL.Path), SourceIP: []byte(peer)}
	for k, vs := range r.Header {
		for _, val := range vs {
			v.Headers = append(v.Headers, route.HeaderField{Name: []byte(k), Value: []byte(val)})
		}
	}
	rt, cl := resolve(b.table, mode, &v, []byte(mode.Cluster))
	cs := h.p.noCluster
	if cl != nil {
		cs = b.clusters[cl.Index]
	}
	code := h.forward(w, r, b, rt, cl, cs, &v, mode, peer)
	cs.codes.inc(code)
	cs.latency.observe(cs.name, time.Since(start).Seconds())
}

func (h *h2Handler) forward(w http.ResponseWriter, r *http.Request, b *binding, rt *route.Route, cl *route.Cluster, cs *clusterState, v *route.Request, mode Mode, peer string) int {
	switch {
	case rt == nil && cl == nil:
		return plainError(w, 404, "no route matches "+r.Host+r.URL.Path)
	case cl == nil:
		return plainError(w, 503, "cluster not found")
	case int(cs.inflight.Add(1)) > cl.MaxRequests:
		cs.inflight.Add(-1)
		return plainError(w, 503, "upstream overflow (circuit breaker)")
	}
	defer cs.inflight.Add(-1)
	ctx := r.Context()
	if rt != nil && rt.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.Timeout)
		defer cancel()
	}
	out := r.Clone(ctx)
	out.RequestURI, out.Close = "", false
	if r.ContentLength == 0 {
		out.Body = nil
	}
	rewriteHeaders(out.Header, mode.trustsForwarded(), peer)
	var info lb.PickInfo
	if rt != nil {
		if hk, ok := rt.HashKey(v); ok {
			info.SetHash(hk)
		}
	}
	res, err := h.roundTrip(out, b, cl, &info)
	if err != nil {
		return transportError(w, ctx, err, len(cl.Endpoints))
	}
	defer res.Body.Close()
	return copyResponse(w, res)
}

// roundTrip sends out to a picked endpoint, retrying connect failures on
// other endpoints (nothing was sent).
func (h *h2Handler) roundTrip(out *http.Request, b *binding, cl *route.Cluster, info *lb.PickInfo) (*http.Response, error) {
	hosts := b.hosts[cl.Index]
	t := http.RoundTripper(h.h1t)
	if cl.Protocol == route.HTTP2 {
		t = h.h2t
	}
	var lastErr error = lb.ErrNoEndpoint
	for range 1 + h.p.cfg.ConnectRetries {
		e, err := cl.Pick(info)
		if err != nil {
			return nil, lastErr
		}
		hst := hosts[route.EndpointOf(e).Index]
		if !hst.available() {
			info.Exclude(e.Address)
			if e, err = cl.Pick(info); err != nil {
				return nil, lastErr
			}
			hst = hosts[route.EndpointOf(e).Index]
		}
		info.Exclude(e.Address)
		out.URL.Scheme, out.URL.Host = "http", e.Address
		hst.countRequest(h.p.metrics)
		e.Begin()
		res, err := t.RoundTrip(out)
		e.End()
		if err == nil {
			if res.StatusCode >= 500 {
				hst.on5xx(&cl.Outlier, len(hosts))
			} else {
				hst.onSuccess()
			}
			return res, nil
		}
		hst.onFailure(&cl.Outlier, len(hosts))
		lastErr = err
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "dial" {
			return nil, err
		}
	}
	return nil, lastErr
}

// rewriteHeaders applies the HTTP/1 path's forwarding rules to a header map.
func rewriteHeaders(hd http.Header, trusted bool, peer string) {
	for _, f := range hd.Values("Connection") {
		for tok := range strings.SplitSeq(f, ",") {
			hd.Del(strings.TrimSpace(tok))
		}
	}
	te := hd.Get("Te")
	for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Transfer-Encoding", "Upgrade", "Proxy-Authorization"} {
		hd.Del(k)
	}
	if strings.Contains(strings.ToLower(te), "trailers") {
		hd.Set("Te", "trailers")
	}
	prior := hd.Values("X-Forwarded-For")
	if !trusted {
		prior = nil
		for _, k := range []string{"X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"} {
			hd.Del(k)
		}
	}
	hd.Set("X-Forwarded-For", strings.Join(append(prior, peer), ", "))
	if hd.Get("X-Forwarded-Proto") == "" {
		hd.Set("X-Forwarded-Proto", "http")
	}
	if hd.Get("X-Request-Id") == "" {
		hd.Set("X-Request-Id", string(appendRequestID(nil)))
	}
}

// copyResponse relays res to w with trailers and a flush after every read
// (streaming RPCs), in the manner of httputil.ReverseProxy.
func copyResponse(w http.ResponseWriter, res *http.Response) int {
	for k, vs := range res.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te":
			continue
		}
		w.Header()[k] = vs
	}
	announced := len(res.Trailer)
	for k := range res.Trailer {
		w.Header().Add("Trailer", k)
	}
	w.WriteHeader(res.StatusCode)
	rc := http.NewResponseController(w)
	if res.Header.Get("Grpc-Status") == "" {
		// Send headers now for streams; a gRPC trailers-only response
		// must instead end with its HEADERS frame (END_STREAM).
		rc.Flush()
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := res.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return res.StatusCode
			}
			rc.Flush()
		}
		if err != nil {
			break
		}
	}
	res.Body.Close()
	for k, vs := range res.Trailer {
		if len(res.Trailer) != announced {
			k = http.TrailerPrefix + k
		}
		w.Header()[k] = vs
	}
	return res.StatusCode
}

func plainError(w http.ResponseWriter, code int, msg string) int {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
	return code
}

func transportError(w http.ResponseWriter, ctx context.Context, err error, endpoints int) int {
	switch {
	case endpoints == 0:
		return plainError(w, 503, "no endpoints")
	case errors.Is(err, lb.ErrNoEndpoint):
		return plainError(w, 502, "no healthy upstream")
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return plainError(w, 504, failureMessage(504))
	}
	return plainError(w, 502, failureMessage(502))
}
