package proxy

import (
	"net/http"
	"time"
	"unsafe"

	"golang.org/x/net/http2/hpack"

	"github.com/shoal-mesh/shoal/sidecar/accesslog"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// accessInfo is what the access log records of a request beyond the
// request itself, gathered while it is handled.
type accessInfo struct {
	flags    accesslog.Flags
	upstream string // the last endpoint tried ("" if none)
	reqIDAt  int    // offset of a generated X-Request-Id in conn.out; 0: none
	reqID    string // a generated X-Request-Id sent through net/http (bridge.go)
}

// retriedFlags are the flags of failed attempts (outcomeFlag). They
// describe the response the client got, as Envoy's do: an attempt that
// failed and was retried leaves none once another attempt's response is
// relayed (Envoy sets them only on the local reply it sends).
const retriedFlags = accesslog.UpstreamConnectionFailure | accesslog.UpstreamConnectionTermination |
	accesslog.UpstreamRequestTimeout | accesslog.UpstreamStalled

// outcomeFlag is the response flag of a failed attempt.
func outcomeFlag(out outcome) accesslog.Flags {
	switch out {
	case connectFailed:
		return accesslog.UpstreamConnectionFailure
	case timedOut:
		return accesslog.UpstreamRequestTimeout
	case stalled:
		return accesslog.UpstreamStalled
	case reset, stale:
		return accesslog.UpstreamConnectionTermination
	}
	return 0
}

var (
	http11 = []byte("HTTP/1.1")
	http10 = []byte("HTTP/1.0")
)

// requestIDLen is the length of a generated X-Request-Id (a UUID).
const requestIDLen = 36

// logAccess writes the request's access log line; it allocates nothing
// (the logger copies the fields).
func (c *conn) logAccess(l *accesslog.Logger, start time.Time, took time.Duration, code int, cluster string) {
	r := &c.req
	e := accesslog.Entry{
		Start: start, Method: r.method, Path: r.target, Protocol: http11,
		Code: code, Flags: c.al.flags, BytesReceived: max(r.contentLength, 0), BytesSent: -1,
		Duration: took, UpstreamServiceTime: -1,
		Authority: r.host, UpstreamHost: c.al.upstream, UpstreamCluster: cluster,
	}
	if r.chunked {
		e.BytesReceived = -1
	}
	if r.minor == 0 {
		e.Protocol = http10
	}
	if c.al.upstream != "" && c.resp.code == code && !c.resp.chunked && c.resp.contentLength >= 0 {
		e.BytesSent = c.resp.contentLength
	}
	logHeaders(&e, r.headers)
	if e.ReqID == nil && c.al.reqIDAt > 0 && c.al.reqIDAt+requestIDLen <= len(c.out) {
		e.ReqID = c.out[c.al.reqIDAt : c.al.reqIDAt+requestIDLen]
	}
	if e.ReqID == nil {
		e.ReqID = bytesOf(c.al.reqID)
	}
	l.Log(&e)
}

// logHeaders sets the entry's User-Agent, X-Forwarded-For and X-Request-Id
// (each header's first value) in one pass over the headers.
func logHeaders(e *accesslog.Entry, hs []route.HeaderField) {
	var ua, id, xff bool // seen
	for i := range hs {
		name := hs[i].Name
		switch len(name) {
		case len("user-agent"):
			if !ua && equalFold(name, "user-agent") {
				e.UserAgent, ua = hs[i].Value, true
			}
		case len("x-request-id"):
			if !id && equalFold(name, "x-request-id") {
				e.ReqID, id = hs[i].Value, true
			}
		case len("x-forwarded-for"):
			if !xff && equalFold(name, "x-forwarded-for") {
				e.XForwardedFor, xff = hs[i].Value, true
			}
		}
	}
}

// headerValue returns the first value of the (lowercase) header name.
func headerValue(hs []route.HeaderField, name string) []byte {
	for i := range hs {
		if len(hs[i].Name) == len(name) && equalFold(hs[i].Name, name) {
			return hs[i].Value
		}
	}
	return nil
}

var http2Proto = []byte("HTTP/2")

// logAccess writes the access log line of an HTTP/2 stream forwarded
// frame to frame (h2fwd.go): one line per stream, with its gRPC status in
// the JSON format. It allocates nothing.
func (fw *h2Fwd) logAccess(l *accesslog.Logger, took time.Duration, cluster string) {
	s := fw.ds
	e := accesslog.Entry{
		Start: fw.start, Method: bytesOf(s.Method), Path: bytesOf(s.Path), Protocol: http2Proto,
		Code: fw.code, Flags: fw.al.flags, BytesReceived: fw.recv, BytesSent: fw.sentDown,
		Duration: took, UpstreamServiceTime: -1,
		Authority: fw.view.Host, UpstreamHost: fw.al.upstream, UpstreamCluster: cluster,
		GRPCStatus: bytesOf(fw.grpc),
	}
	for _, f := range s.Fields {
		switch f.Name {
		case "user-agent":
			if e.UserAgent == nil {
				e.UserAgent = bytesOf(f.Value)
			}
		case "x-forwarded-for":
			if e.XForwardedFor == nil {
				e.XForwardedFor = bytesOf(f.Value)
			}
		case "x-request-id":
			if e.ReqID == nil {
				e.ReqID = bytesOf(f.Value)
			}
		}
	}
	if e.ReqID == nil {
		for i := len(fw.req) - 1; i >= 0; i-- { // the generated one is last
			if fw.req[i].Name == "x-request-id" {
				e.ReqID = bytesOf(fw.req[i].Value)
				break
			}
		}
	}
	l.Log(&e)
}

// grpcStatusValue is the grpc-status among fields, "" when none.
func grpcStatusValue(fields []hpack.HeaderField) string {
	for _, f := range fields {
		if f.Name == "grpc-status" {
			return f.Value
		}
	}
	return ""
}

// bytesOf is s's bytes without a copy, for the logger to copy; nil for "".
func bytesOf(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// logAccess writes the access log line of a request of an h2c connection
// forwarded through net/http (h2.go: to an HTTP/1.1 cluster, or answered
// locally). The response body size is not known there ("-").
func (x *h2Exchange) logAccess(l *accesslog.Logger, r *http.Request, start time.Time, took time.Duration, code int, cluster string) {
	e := accesslog.Entry{
		Start: start, Method: bytesOf(r.Method), Path: bytesOf(r.RequestURI), Protocol: http2Proto,
		Code: code, Flags: x.al.flags, BytesReceived: -1, BytesSent: -1,
		Duration: took, UpstreamServiceTime: -1,
		Authority: bytesOf(r.Host), UpstreamHost: x.al.upstream, UpstreamCluster: cluster,
		UserAgent: firstValue(r.Header, "User-Agent"), XForwardedFor: firstValue(r.Header, "X-Forwarded-For"),
		ReqID: bytesOf(x.reqID),
	}
	if r.ContentLength >= 0 {
		e.BytesReceived = r.ContentLength
	}
	if r.ProtoMajor != 2 {
		e.Protocol = http11
	}
	if e.ReqID == nil {
		e.ReqID = firstValue(r.Header, "X-Request-Id")
	}
	l.Log(&e)
}

// firstValue is the first value of the canonical header key k, nil if none.
func firstValue(h http.Header, k string) []byte {
	if vs := h[k]; len(vs) > 0 {
		return bytesOf(vs[0])
	}
	return nil
}
