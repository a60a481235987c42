package proxy

import (
	"time"

	"github.com/shoal-mesh/shoal/sidecar/accesslog"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// accessInfo is what the access log records of a request beyond the
// request itself, gathered while it is handled.
type accessInfo struct {
	flags    accesslog.Flags
	upstream string // the last endpoint tried ("" if none)
	reqIDAt  int    // offset of a generated X-Request-Id in conn.out; 0: none
}

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
