package proxy

import (
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/shoal-mesh/shoal/sidecar/tracing"
)

// spanInfo is a request's span while it is handled (Config.Tracer).
type spanInfo struct {
	on     bool
	ctx    tracing.Context
	parent [8]byte
}

// startSpan joins the request's trace (its traceparent) or starts one.
func (c *conn) startSpan(t *tracing.Tracer) {
	ctx, parent := t.Start(headerValue(c.req.headers, "traceparent"))
	c.span = spanInfo{on: true, ctx: ctx, parent: parent}
}

// endSpan hands the finished span to the tracer (which keeps only sampled
// ones). Inbound and at the gateway the span is the server side of the
// hop, outbound its client side, as Envoy's ingress and egress spans.
func (c *conn) endSpan(t *tracing.Tracer, start time.Time, code int, cluster string) {
	if !c.span.ctx.Sampled || !t.Exporting() {
		return
	}
	kind, name := tracepb.Span_SPAN_KIND_CLIENT, "egress "
	if c.mode.Kind == Inbound || c.mode.Kind == Gateway {
		kind, name = tracepb.Span_SPAN_KIND_SERVER, "ingress "
	}
	t.End(&tracing.Span{
		Context: c.span.ctx, Parent: c.span.parent, Name: name + cluster, Kind: kind,
		Start: start, End: time.Now(), Method: string(c.req.method), Path: string(c.req.path),
		Status: code, Upstream: c.al.upstream, Cluster: cluster,
	})
}
