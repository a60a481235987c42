package tracing

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTraceparent(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
		sampled  bool
	}{
		{"sampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true, true},
		{"not sampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true, false},
		{"uppercase hex is invalid", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false, false},
		{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false, false},
		{"zero span id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false, false},
		{"version ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false, false},
		{"short", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", false, false},
		{"version 00 with more", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", false, false},
		{"future version with more", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := ParseTraceparent([]byte(tc.in))
			if ok != tc.ok || (ok && c.Sampled != tc.sampled) {
				t.Fatalf("ParseTraceparent(%q) = %+v, %v; want ok %v sampled %v", tc.in, c, ok, tc.ok, tc.sampled)
			}
			if ok && tc.in[:2] == "00" {
				if got := string(AppendTraceparent(nil, c)); got != tc.in {
					t.Errorf("round trip: %q, want %q", got, tc.in)
				}
			}
		})
	}
}

func TestStartJoinsOrStartsATrace(t *testing.T) {
	tr, _ := New(Config{SampleRate: 1})
	in := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	c, parent := tr.Start([]byte(in))
	if got := string(AppendTraceparent(nil, c))[:35]; got != in[:35] || c.Sampled {
		t.Errorf("joined %q sampled=%v, want trace %q unsampled", got, c.Sampled, in[:35])
	}
	if string(AppendTraceparent(nil, Context{TraceID: c.TraceID, SpanID: parent}))[36:52] != in[36:52] {
		t.Error("the incoming span is not the parent")
	}
	c2, p2 := tr.Start(nil)
	if !c2.Sampled || p2 != ([8]byte{}) || c2.TraceID == c.TraceID {
		t.Errorf("new trace = %+v parent %v, want sampled root with a new id", c2, p2)
	}
	never, _ := New(Config{SampleRate: 0})
	if c3, _ := never.Start([]byte("garbage")); c3.Sampled {
		t.Error("rate 0 sampled a new trace")
	}
}

// receiver is a real OTLP/gRPC collector endpoint built on the generated
// collector service.
type receiver struct {
	collectorpb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
	names []string
}

func (r *receiver) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				r.names = append(r.names, a.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

func TestExportReachesACollector(t *testing.T) {
	rcv := &receiver{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(g, rcv)
	done := make(chan struct{})
	go func() { defer close(done); g.Serve(lis) }()
	defer func() { g.Stop(); <-done }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	tr, _ := New(Config{Conn: cc, Service: "web-sidecar", SampleRate: 1, Interval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { tr.Run(ctx); close(ran) }()
	c, parent := tr.Start([]byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
	now := time.Now()
	tr.End(&Span{Context: c, Parent: parent, Name: "egress orders", Kind: tracepb.Span_SPAN_KIND_CLIENT,
		Start: now, End: now.Add(time.Millisecond), Method: "GET", Path: "/x", Status: 503, Upstream: "127.0.0.1:1", Cluster: "orders"})
	unsampled, _ := tr.Start([]byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"))
	tr.End(&Span{Context: unsampled, Name: "not sampled"})
	deadline := time.Now().Add(10 * time.Second)
	for tr.Sent() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // poll interval of a loop with a deadline
	}
	cancel()
	<-ran
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.spans) != 1 || rcv.names[0] != "web-sidecar" {
		t.Fatalf("collector got %d spans from %v, want the one sampled span from web-sidecar", len(rcv.spans), rcv.names)
	}
	s := rcv.spans[0]
	if s.GetName() != "egress orders" || s.GetKind() != tracepb.Span_SPAN_KIND_CLIENT || s.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR ||
		string(s.GetParentSpanId()) != string(parent[:]) || string(s.GetTraceId()) != string(c.TraceID[:]) {
		t.Errorf("span = %v", s)
	}
}
