package proxy

import (
	"net/http"
	"time"
	"unsafe"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"golang.org/x/net/http2/hpack"

	"github.com/shoal-mesh/shoal/sidecar/tracing"
)

// spanInfo is a request's span while it is handled (Config.Tracer).
type spanInfo struct {
	on     bool
	ctx    tracing.Context
	parent [8]byte
}

// start joins the trace of the incoming traceparent tp or starts one.
func (s *spanInfo) start(t *tracing.Tracer, tp []byte) {
	ctx, parent := t.Start(tp)
	*s = spanInfo{on: true, ctx: ctx, parent: parent}
}

// end hands the finished span to the tracer (which keeps only sampled
// ones). Inbound and at the gateway the span is the server side of the
// hop, outbound its client side, as Envoy's ingress and egress spans.
// method and path are only read when the span is exported.
func (s *spanInfo) end(t *tracing.Tracer, m ModeKind, start time.Time, method, path []byte, code int, upstream, cluster string) {
	if !s.on || !s.ctx.Sampled || !t.Exporting() {
		return
	}
	kind, name := tracepb.Span_SPAN_KIND_CLIENT, "egress "
	if m == Inbound || m == Gateway {
		kind, name = tracepb.Span_SPAN_KIND_SERVER, "ingress "
	}
	t.End(&tracing.Span{
		Context: s.ctx, Parent: s.parent, Name: name + cluster, Kind: kind,
		Start: start, End: time.Now(), Method: string(method), Path: string(path),
		Status: code, Upstream: upstream, Cluster: cluster,
	})
}

// startSpan joins the request's trace (its traceparent) or starts one.
func (c *conn) startSpan(t *tracing.Tracer) {
	c.span.start(t, headerValue(c.req.headers, "traceparent"))
}

// endSpan ends the request's span (spanInfo.end).
func (c *conn) endSpan(t *tracing.Tracer, start time.Time, code int, cluster string) {
	c.span.end(t, c.mode.Kind, start, c.req.method, c.req.path, code, c.al.upstream, cluster)
}

// HTTP/2 streams forwarded frame to frame (h2fwd.go) carry this hop's
// span in the traceparent they send upstream, as HTTP/1.1 requests do.

// startSpan joins the stream's trace or starts one.
func (fw *h2Fwd) startSpan(t *tracing.Tracer) {
	var tp []byte
	for _, f := range fw.ds.Fields {
		if f.Name == "traceparent" {
			tp = bytesOf(f.Value)
			break
		}
	}
	fw.span.start(t, tp)
}

// traceparent is the upstream request's traceparent field: this hop's
// span. Sensitive: a unique value is never worth an HPACK table entry (and
// the encoder then keeps no reference to fw.tp).
func (fw *h2Fwd) traceparent() hpack.HeaderField {
	v := tracing.AppendTraceparent(fw.tp[:0], fw.span.ctx)
	return hpack.HeaderField{Name: "traceparent", Value: unsafe.String(&v[0], len(v)), Sensitive: true}
}

// The net/http path (h2.go) sets the same header on the request it sends.

// startSpan joins r's trace or starts one.
func (x *h2Exchange) startSpan(t *tracing.Tracer, r *http.Request) {
	x.span.start(t, firstValue(r.Header, "Traceparent"))
}
