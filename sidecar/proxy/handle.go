package proxy

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/accesslog"
	"github.com/shoal-mesh/shoal/sidecar/route"
	"github.com/shoal-mesh/shoal/sidecar/tracing"
)

// handle routes and forwards one parsed request and reports whether the
// client connection stays open.
func (c *conn) handle() bool {
	start := time.Now()
	c.al = accessInfo{}
	c.end = time.Time{}
	if t := c.p.cfg.Tracer; t != nil {
		c.startSpan(t)
	}
	c.startBody()
	b := c.p.bound.Load()
	c.fillView()
	rt, cl := c.resolve(b)
	if c.inRaw && cl != nil && cl.Protocol == route.HTTP2 {
		c.escaped = true // the transport reads the body from the client
		return false
	}
	cs := c.p.noCluster
	if cl != nil {
		cs = b.clusters[cl.Index]
	}
	code, keep := c.dispatch(b, rt, cl, cs, start)
	cs.codes.inc(code)
	end := c.end
	if end.IsZero() {
		end = time.Now()
	}
	took := end.Sub(start)
	cs.latency.observe(cs.name, took.Seconds())
	countEdge(c.mode, cs, rt, code, took.Seconds())
	if l := c.p.cfg.AccessLog; l != nil {
		c.logAccess(l, start, took, code, cs.name)
	}
	if t := c.p.cfg.Tracer; t != nil {
		c.endSpan(t, start, code, cs.name)
	}
	return keep
}

func (c *conn) dispatch(b *binding, rt *route.Route, cl *route.Cluster, cs *clusterState, start time.Time) (int, bool) {
	if reason := inboundDenied(b.table, c.mode, c.callerID(), &c.view); reason != "" {
		return 403, c.localReply(403, reason)
	}
	switch {
	case rt == nil && cl == nil:
		c.al.flags |= accesslog.NoRouteFound
		return 404, c.localReply(404, notFoundMessage(b.table, c.view.Host, c.req.path))
	case cl == nil:
		return 503, c.localReply(503, "cluster not found")
	case cl.Protocol == route.TCP:
		return 400, c.localReply(400, "cluster "+cl.Name+" is TCP")
	}
	if int(cs.inflight.Add(1)) > cl.MaxRequests {
		cs.inflight.Add(-1)
		c.al.flags |= accesslog.UpstreamOverflow
		return 503, c.localReply(503, "upstream overflow (circuit breaker)")
	}
	defer cs.inflight.Add(-1)
	a := c.newAttempt(b, rt, cl, start)
	defer a.release()
	if rt != nil {
		if h, ok := rt.HashKey(&c.view); ok {
			a.info.SetHash(h)
		}
	}
	if cl.Protocol == route.HTTP2 || c.req.upgrade {
		// net/http's transport may still read the body after the
		// response: the buffers stay with this connection.
		c.pinned = true
		return c.forwardViaTransport(a)
	}
	c.buildOut(cl)
	if c.req.expectContinue && c.req.hasBody() {
		c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		c.bw.Flush()
	}
	limit := c.p.cfg.ReplayBufferBytes
	if a.policy() == nil {
		limit = 0
	}
	ok, err := c.readReplay(limit)
	if err != nil {
		return 400, false
	}
	a.replayable = ok
	if ok || !c.req.hasBody() {
		// The whole request is here; one without a body was when handle
		// began.
		now := start
		if c.req.hasBody() {
			now = time.Now()
		}
		a.startTimer(now)
	}
	return c.forward(a)
}

func (c *conn) newAttempt(b *binding, rt *route.Route, cl *route.Cluster, start time.Time) *attempt {
	a := &c.attempt
	a.init(b, rt, cl, start, c.p.cfg.ConnectRetries)
	a.idempotent = c.req.idempotent()
	if cl.Protocol != route.HTTP2 && !c.req.upgrade {
		// forward starts the route timer once the request is received.
		a.deadline = time.Time{}
	}
	return a
}

// resolve finds the route and cluster for the request per listener mode.
func (c *conn) resolve(b *binding) (*route.Route, *route.Cluster) {
	return resolve(b.table, c.mode, &c.view, c.fixed)
}

// resolve finds the route (nil for defaults) and cluster (nil: none) of a
// request per listener mode. For Fixed it overwrites v.Host with fixed.
func resolve(t *route.Table, m Mode, v *route.Request, fixed []byte) (*route.Route, *route.Cluster) {
	switch m.Kind {
	case Inbound:
		return nil, t.Cluster(m.Cluster)
	case Fixed:
		v.Host = fixed
		if rt := t.Match(v); rt != nil {
			return rt, rt.PickCluster()
		}
		return nil, t.Cluster(m.Cluster)
	}
	rt := t.Match(v)
	if rt == nil {
		return nil, nil
	}
	return rt, rt.PickCluster()
}

func (c *conn) fillView() {
	r := &c.req
	c.view = route.Request{Host: r.host, Method: r.method, Path: r.path, Headers: r.headers, SourceIP: c.peerIP}
	if c.mode.Kind == Gateway && c.mode.XFFTrustedHops > 0 && r.hasXFF {
		if ip := c.trustedClientIP(); ip != nil {
			c.view.SourceIP = ip
		}
	}
}

// trustedClientIP returns the XFFTrustedHops-th address from the right of
// X-Forwarded-For (several fields form one list), or nil if too short.
func (c *conn) trustedClientIP() []byte {
	n := c.mode.XFFTrustedHops
	hs := c.req.headers
	for i := len(hs) - 1; i >= 0; i-- {
		if !equalFold(hs[i].Name, "x-forwarded-for") {
			continue
		}
		v := hs[i].Value
		for len(v) > 0 {
			j := bytes.LastIndexByte(v, ',')
			if n--; n == 0 {
				return trimOWS(v[j+1:])
			}
			if j < 0 {
				break
			}
			v = v[:j]
		}
	}
	return nil
}

// buildOut writes the upstream request head into c.out: origin-form
// target, Host first, hop-by-hop headers removed (RFC 9110 7.6.1; the
// Connection header and the fields it names, Keep-Alive, Proxy-Connection,
// TE except "trailers", Transfer-Encoding, Upgrade), X-Forwarded-For/-Proto
// per httputil.ReverseProxy's Rewrite and SetXForwarded semantics
// (golang/go#50580: dropped from untrusted clients, appended to from
// trusted ones), an X-Request-Id when absent, and framing.
func (c *conn) buildOut(cl *route.Cluster) {
	r := &c.req
	trusted := c.trusted
	o := append(c.out[:0], r.method...)
	o = append(o, ' ')
	o = append(o, r.target...)
	o = append(o, " HTTP/1.1\r\nHost: "...)
	if r.host != nil {
		o = append(o, r.host...)
	} else {
		o = append(o, cl.Name...)
	}
	o = append(o, "\r\n"...)
	toks := r.connTokens[:r.nConnTokens]
	hasProto := false
	// Inbound and at the edge, a client's x-forwarded-client-cert is
	// removed (Envoy's SANITIZE); inbound over mTLS the proxy sets its own.
	sanitizeXFCC := c.mode.Kind == Inbound || c.mode.Kind == Gateway
	var xfcc []byte
	if pi, ok := c.nc.(PeerIdentity); ok && c.mode.Kind == Inbound {
		xfcc = pi.XFCC()
	}
	for i := range r.headers {
		f := &r.headers[i]
		switch classify(f.Name) {
		case hdrForward:
			if (len(toks) > 0 && namedIn(f.Name, toks)) || (r.expectContinue && equalFold(f.Name, "expect")) {
				continue
			}
			if sanitizeXFCC && len(f.Name) == len("x-forwarded-client-cert") && equalFold(f.Name, "x-forwarded-client-cert") {
				continue
			}
			if c.span.on && len(f.Name) == len("traceparent") && equalFold(f.Name, "traceparent") {
				continue // replaced below with this hop's span
			}
		case hdrForwarded:
			if !trusted {
				continue
			}
			hasProto = hasProto || equalFold(f.Name, "x-forwarded-proto")
		default:
			continue
		}
		o = appendField(o, f.Name, f.Value)
	}
	o = c.appendXFF(o, trusted)
	if xfcc != nil {
		o = append(append(append(o, "X-Forwarded-Client-Cert: "...), xfcc...), "\r\n"...)
	}
	if !hasProto {
		o = append(o, "X-Forwarded-Proto: http\r\n"...)
	}
	if c.span.on {
		o = append(o, "Traceparent: "...)
		o = append(tracing.AppendTraceparent(o, c.span.ctx), "\r\n"...)
	}
	if !r.hasReqID {
		o = append(o, "X-Request-Id: "...)
		c.al.reqIDAt = len(o)
		o = append(appendRequestID(o), "\r\n"...)
	}
	c.out = appendFraming(o, r)
}

func (c *conn) appendXFF(o []byte, trusted bool) []byte {
	o = append(o, "X-Forwarded-For: "...)
	if trusted && c.req.hasXFF {
		for i := range c.req.headers {
			if f := &c.req.headers[i]; equalFold(f.Name, "x-forwarded-for") {
				o = append(append(o, f.Value...), ", "...)
			}
		}
	}
	o = append(o, c.peerIP...)
	return append(o, "\r\n"...)
}

func appendFraming(o []byte, r *request) []byte {
	switch {
	case r.chunked:
		o = append(o, "Transfer-Encoding: chunked\r\n"...)
	case r.contentLength >= 0:
		o = append(o, "Content-Length: "...)
		o = append(appendInt(o, r.contentLength), "\r\n"...)
	}
	if r.teTrailers {
		o = append(o, "Te: trailers\r\n"...)
	}
	return append(o, "\r\n"...)
}

func appendField(o, name, value []byte) []byte {
	o = append(o, name...)
	o = append(o, ": "...)
	o = append(o, value...)
	return append(o, "\r\n"...)
}

// xfcc is the connection's x-forwarded-client-cert for the app: set on
// an inbound mTLS connection (PeerIdentity), "" otherwise.
func (c *conn) xfcc() string {
	if pi, ok := c.nc.(PeerIdentity); ok && c.mode.Kind == Inbound {
		return string(pi.XFCC())
	}
	return ""
}

// setXFCC applies the HTTP/1 path's x-forwarded-client-cert rule to a
// header map: removed from clients inbound and at the edge (Envoy's
// SANITIZE), then set to xfcc when the caller was authenticated.
func setXFCC(hd http.Header, m Mode, xfcc string) {
	if m.Kind == Inbound || m.Kind == Gateway {
		delete(hd, "X-Forwarded-Client-Cert")
	}
	if xfcc != "" {
		hd["X-Forwarded-Client-Cert"] = []string{xfcc}
	}
}

// notFoundMessage says why a request matched no route: no service or route
// has its host, or one has and no rule matches the path.
func notFoundMessage(t *route.Table, host, path []byte) string {
	if !t.HasHost(host) {
		return fmt.Sprintf("no service or route named %q", host)
	}
	return "no route matches " + string(host) + string(path)
}

// noInstanceMessage is the answer for a known service (a cluster) with no
// instance: its cluster is <service> or <service>/<strategy>.
func noInstanceMessage(cluster string) string {
	svc, _, _ := strings.Cut(cluster, "/")
	return "no healthy instance of service " + svc
}
