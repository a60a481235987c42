package e2e

import (
	"context"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// otlpReceiver is a real OTLP/gRPC collector endpoint (the generated
// collector service) that keeps every span it receives.
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

func (r *otlpReceiver) named(name string) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range r.spans {
		if s.GetName() == name {
			out = append(out, s)
		}
	}
	return out
}

func startOTLPReceiver(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{}
	g := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(g, r)
	done := make(chan struct{})
	go func() { defer close(done); g.Serve(lis) }()
	t.Cleanup(func() { g.Stop(); <-done })
	return r, lis.Addr().String()
}

// TestTraceAcrossTwoHops: a request enters at the gateway (which starts the
// trace), reaches web's Node.js app, which calls orders through its own
// sidecar with the trace preload (`node -r @shoal-mesh/node/trace`); the
// collector receives one trace: the gateway's server span and, as its
// child, web's sidecar's client span to orders.
func TestTraceAcrossTwoHops(t *testing.T) {
	rcv, otlp := startOTLPReceiver(t)
	cp := harness.StartControlPlane(t)
	orders := harness.StartNodeApp(t, harness.NodeAppOptions{Service: "orders", ID: "orders-1"})
	harness.StartSidecar(t, harness.SidecarOptions{CP: cp, Service: "orders", InstanceID: "orders-1", AppPort: orders.Port})
	ordersVia := harness.FreeAddr(t) // web's sidecar's local port for orders
	preload, err := filepath.Abs("../nodejs/trace.js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(preload); err != nil {
		t.Fatal(err)
	}
	web := harness.StartNodeApp(t, harness.NodeAppOptions{Service: "web", ID: "web-1", Env: []string{
		"UPSTREAM_URL=http://" + ordersVia + "/orders", "NODE_OPTIONS=-r " + preload,
	}})
	webSC := harness.StartSidecar(t, harness.SidecarOptions{CP: cp, Service: "web", InstanceID: "web-1", AppPort: web.Port,
		Extra: []string{"--upstream", "orders=" + ordersVia, "--otlp-endpoint", otlp}})
	gw := harness.StartGateway(t, harness.SidecarOptions{CP: cp, Extra: []string{"--otlp-endpoint", otlp, "--access-log", ""}})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for ctx.Err() == nil && (len(gw.RoutableEndpoints("web")) == 0 || len(webSC.RoutableEndpoints("orders")) == 0) {
		time.Sleep(50 * time.Millisecond) // poll interval of a loop with a deadline
	}
	client := harness.NewHTTPClient("")
	if _, code, err := harness.Fetch(ctx, client, "GET", "http://"+gw.Listen+"/", "web", nil, 10*time.Second); err != nil || code != 200 {
		t.Fatalf("GET web through the gateway: %d, %v", code, err)
	}
	var in, out []*tracepb.Span
	for ctx.Err() == nil {
		in, out = rcv.named("ingress web"), rcv.named("egress orders")
		if len(in) > 0 && len(out) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond) // poll interval of a loop with a deadline
	}
	if len(in) != 1 || len(out) != 1 {
		t.Fatalf("spans: %d 'ingress web' (gateway), %d 'egress orders' (web's sidecar); want one each", len(in), len(out))
	}
	g, w := in[0], out[0]
	if len(g.GetParentSpanId()) != 0 || g.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("gateway span: parent %x kind %v, want a root server span", g.GetParentSpanId(), g.GetKind())
	}
	if hex.EncodeToString(w.GetTraceId()) != hex.EncodeToString(g.GetTraceId()) {
		t.Errorf("two traces: gateway %x, web's sidecar %x", g.GetTraceId(), w.GetTraceId())
	}
	if hex.EncodeToString(w.GetParentSpanId()) != hex.EncodeToString(g.GetSpanId()) || w.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("web's sidecar span: parent %x kind %v, want the gateway's span %x as parent, client kind",
			w.GetParentSpanId(), w.GetKind(), g.GetSpanId())
	}
}
