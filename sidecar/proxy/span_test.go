package proxy

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-mesh/shoal/sidecar/route"
	"github.com/shoal-mesh/shoal/sidecar/tracing"
)

// otlpReceiver is a real OTLP/gRPC collector endpoint (the generated
// collector service) that keeps the spans it receives.
type otlpReceiver struct {
	collectorpb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (r *otlpReceiver) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) received() []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spans...)
}

// startTracer returns a tracer exporting to a collector on loopback.
func startTracer(t *testing.T) (*tracing.Tracer, *otlpReceiver) {
	t.Helper()
	rcv := &otlpReceiver{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(g, rcv)
	served := make(chan struct{})
	go func() { defer close(served); g.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tracing.New(tracing.Config{Conn: cc, Service: "web-sidecar", SampleRate: 1, Interval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); tr.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ran; cc.Close(); g.Stop(); <-served })
	return tr, rcv
}

// HTTP/2 streams join the caller's trace as HTTP/1.1 requests do: the
// upstream gets this hop's span in its traceparent, and the span (a client
// span outbound, the caller's span as its parent) reaches the collector;
// frame to frame to an h2c cluster and through net/http to an HTTP/1.1 one.
func TestHTTP2StreamsMakeSpans(t *testing.T) {
	tr, rcv := startTracer(t)
	p, addr := startProxy(t, Config{Tracer: tr}, Mode{Kind: Outbound})
	var mu sync.Mutex
	seen := map[string]string{} // path -> traceparent the upstream got
	be := startH2CBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Get("Traceparent")
		mu.Unlock()
	})
	tbl, err := route.New(route.Config{
		VirtualHosts: []route.VirtualHost{
			{Name: "grpc", Domains: []string{"grpc"}, Routes: []route.Route{{Match: route.Match{PathPrefix: "/"}, Clusters: one("grpc")}}},
			{Name: "web", Domains: []string{"web"}, Routes: []route.Route{{Match: route.Match{PathPrefix: "/"}, Clusters: one("web")}}},
		},
		Clusters: []route.ClusterConfig{{Name: "grpc", Protocol: route.HTTP2, Endpoints: endpoints(be)}, {Name: "web", Endpoints: endpoints(be)}},
		Loads:    p.Loads(),
	})
	if err != nil {
		t.Fatal(err)
	}
	p.SetTable(tbl)
	const traceID, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	c := h2cClient(t)
	for host, path := range map[string]string{"grpc": "/pkg.Svc/Get", "web": "/page"} {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Host = host
		req.Header.Set("Traceparent", "00-"+traceID+"-"+callerSpan+"-01")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	var spans []*tracepb.Span
	eventually(t, "two spans at the collector", func() bool {
		spans = rcv.received()
		return len(spans) >= 2
	})
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	byName := map[string]*tracepb.Span{}
	for _, s := range spans {
		byName[s.GetName()] = s
	}
	mu.Lock()
	defer mu.Unlock()
	for name, path := range map[string]string{"egress grpc": "/pkg.Svc/Get", "egress web": "/page"} {
		s := byName[name]
		if s == nil {
			t.Errorf("no span %q among %v", name, spans)
			continue
		}
		if hex.EncodeToString(s.GetTraceId()) != traceID || hex.EncodeToString(s.GetParentSpanId()) != callerSpan ||
			s.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("%s: trace %x parent %x kind %v; want the caller's trace, its span as the parent, a client span",
				name, s.GetTraceId(), s.GetParentSpanId(), s.GetKind())
		}
		want := "00-" + traceID + "-" + hex.EncodeToString(s.GetSpanId()) + "-01"
		if got := seen[path]; got != want || strings.Contains(got, callerSpan) {
			t.Errorf("%s: upstream got traceparent %q, want %q (this hop's span)", name, got, want)
		}
	}
}
