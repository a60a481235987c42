// Package tracing makes the proxy's spans: it reads and writes the W3C
// trace context (https://www.w3.org/TR/trace-context/ traceparent and
// tracestate), starts a trace when a request has none (sampled at a rate),
// honours the sampled flag of one that has, and exports the sampled spans
// over OTLP/gRPC to a collector.
//
// Export uses the generated OTLP protos (go.opentelemetry.io/proto/otlp)
// rather than the OpenTelemetry SDK, for the slim sidecar's memory budget:
// the SDK and its exporter would link a second telemetry stack beside the
// proxy's own metrics. The request is sent as
// opentelemetry.proto.trace.v1.TracesData, which has the same fields and
// numbers as the collector's ExportTraceServiceRequest ("TracesData ... can
// be embedded by other protocols"): importing the collector's Go package
// would also link grpc-gateway.
//
// Spans are queued without blocking the request and exported in batches
// by Run; when the collector cannot keep up, spans are dropped and counted.
package tracing

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// ExportMethod is the OTLP trace service's one RPC.
const ExportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// Context is a request's position in a trace.
type Context struct {
	TraceID [16]byte
	SpanID  [8]byte
	Sampled bool
}

// ParseTraceparent parses a version-00 traceparent header value; ok is
// false for anything malformed (the proxy then starts a new trace, as the
// W3C spec asks).
func ParseTraceparent(v []byte) (c Context, ok bool) {
	// 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || (len(v) > 55 && v[55] != '-') {
		return Context{}, false
	}
	if string(v[:2]) == "ff" || !isHex(v[:2]) {
		return Context{}, false
	}
	if string(v[:2]) == "00" && len(v) != 55 {
		return Context{}, false
	}
	if _, err := hex.Decode(c.TraceID[:], v[3:35]); err != nil || !isLowerHex(v[3:35]) {
		return Context{}, false
	}
	if _, err := hex.Decode(c.SpanID[:], v[36:52]); err != nil || !isLowerHex(v[36:52]) {
		return Context{}, false
	}
	var flags [1]byte
	if _, err := hex.Decode(flags[:], v[53:55]); err != nil {
		return Context{}, false
	}
	if c.TraceID == ([16]byte{}) || c.SpanID == ([8]byte{}) {
		return Context{}, false
	}
	c.Sampled = flags[0]&1 == 1
	return c, true
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// AppendTraceparent appends c as a traceparent value.
func AppendTraceparent(dst []byte, c Context) []byte {
	dst = append(dst, "00-"...)
	dst = hex.AppendEncode(dst, c.TraceID[:])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, c.SpanID[:])
	if c.Sampled {
		return append(dst, "-01"...)
	}
	return append(dst, "-00"...)
}

// Span is one proxied request as the proxy saw it.
type Span struct {
	Context
	Parent     [8]byte // zero: a root span
	TraceState string
	Name       string // e.g. "ingress web" or "egress orders"
	Kind       tracepb.Span_SpanKind
	Start, End time.Time
	Method     string
	Path       string
	Status     int
	Upstream   string // the endpoint, host:port
	Cluster    string
}

// Config configures a Tracer.
type Config struct {
	// Conn is the channel to the OTLP collector (--otlp-endpoint); nil
	// means spans are made (trace context is propagated) but not exported.
	Conn grpc.ClientConnInterface
	// Service names the proxy in the resource (service.name), e.g.
	// "web-sidecar" or "gateway".
	Service string
	// SampleRate is the share of new traces (requests without a
	// traceparent) that are sampled, 0..1.
	SampleRate float64
	// MaxQueue bounds the spans waiting for export; zero means 2048.
	MaxQueue int
	// Interval is how often spans are exported; zero means 1s.
	Interval time.Duration
	Logger   *slog.Logger
}

// Tracer makes and exports spans. Safe for concurrent use.
type Tracer struct {
	cfg Config
	log *slog.Logger
	// mu guards queue.
	mu      sync.Mutex
	queue   []Span
	dropped atomic.Uint64
	sent    atomic.Uint64
}

// New returns a Tracer.
func New(cfg Config) (*Tracer, error) {
	if cfg.SampleRate < 0 || cfg.SampleRate > 1 {
		return nil, errors.New("tracing: sample rate must be within 0..1")
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 2048
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Tracer{cfg: cfg, log: cfg.Logger.With("component", "tracing")}, nil
}

// Start returns the context of a new span for a request whose incoming
// traceparent is in (nil or malformed: a new trace, sampled at the rate),
// and the parent span id (zero for a root span).
func (t *Tracer) Start(in []byte) (c Context, parent [8]byte) {
	if p, ok := ParseTraceparent(in); ok {
		c.TraceID, c.Sampled, parent = p.TraceID, p.Sampled, p.SpanID
	} else {
		putUint64(c.TraceID[:8], rand.Uint64())
		putUint64(c.TraceID[8:], rand.Uint64())
		c.Sampled = t.cfg.SampleRate > 0 && rand.Float64() < t.cfg.SampleRate
	}
	for c.SpanID == ([8]byte{}) {
		putUint64(c.SpanID[:], rand.Uint64())
	}
	return c, parent
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
}

// Exporting reports whether spans are exported at all.
func (t *Tracer) Exporting() bool { return t.cfg.Conn != nil }

// End queues a finished span for export if it is sampled; it never blocks.
func (t *Tracer) End(s *Span) {
	if !s.Sampled || t.cfg.Conn == nil {
		return
	}
	t.mu.Lock()
	if len(t.queue) >= t.cfg.MaxQueue {
		t.mu.Unlock()
		t.dropped.Add(1)
		return
	}
	t.queue = append(t.queue, *s)
	t.mu.Unlock()
}

// Dropped counts spans dropped because the queue was full; Sent those
// the collector accepted.
func (t *Tracer) Dropped() uint64 { return t.dropped.Load() }

// Sent counts spans the collector accepted.
func (t *Tracer) Sent() uint64 { return t.sent.Load() }

// Run exports the queued spans every Interval until ctx is done, then
// once more (within a second) and returns.
func (t *Tracer) Run(ctx context.Context) {
	if t.cfg.Conn == nil {
		<-ctx.Done()
		return
	}
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), time.Second)
			t.export(fctx)
			cancel()
			return
		case <-tick.C:
			t.export(ctx)
		}
	}
}

func (t *Tracer) export(ctx context.Context) {
	t.mu.Lock()
	spans := t.queue
	t.queue = nil
	t.mu.Unlock()
	if len(spans) == 0 {
		return
	}
	req := &tracepb.TracesData{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", t.cfg.Service)}},
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: "shoal"},
			Spans: toProto(spans),
		}},
	}}}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := t.cfg.Conn.Invoke(ctx, ExportMethod, req, &emptypb.Empty{}); err != nil {
		t.dropped.Add(uint64(len(spans)))
		t.log.Debug("span export failed", "spans", len(spans), "err", err)
		return
	}
	t.sent.Add(uint64(len(spans)))
}

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func toProto(spans []Span) []*tracepb.Span {
	out := make([]*tracepb.Span, len(spans))
	for i := range spans {
		s := &spans[i]
		p := &tracepb.Span{
			TraceId: s.TraceID[:], SpanId: s.SpanID[:], TraceState: s.TraceState, Name: s.Name, Kind: s.Kind,
			StartTimeUnixNano: uint64(s.Start.UnixNano()), EndTimeUnixNano: uint64(s.End.UnixNano()),
			Attributes: []*commonpb.KeyValue{
				str("http.request.method", s.Method), str("url.path", s.Path),
				{Key: "http.response.status_code", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(s.Status)}}},
			},
			Flags: 0x100, // SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK: the parent's remoteness is known
		}
		if s.Parent != ([8]byte{}) {
			p.ParentSpanId = s.Parent[:]
			p.Flags |= 0x200 // the parent is remote (another process)
		}
		if s.Upstream != "" {
			p.Attributes = append(p.Attributes, str("upstream.address", s.Upstream))
		}
		if s.Cluster != "" {
			p.Attributes = append(p.Attributes, str("upstream.cluster", s.Cluster))
		}
		if s.Status >= 500 || s.Status == 0 {
			p.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR}
		}
		out[i] = p
	}
	return out
}
