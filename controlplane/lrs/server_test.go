package lrs

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/internal/metric"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const defaultTestTimeout = 10 * time.Second

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// startServer serves s on a loopback port and returns a connected client.
func startServer(t *testing.T, s *Server) lrsv3.LoadReportingServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	s.Register(g)
	done := make(chan struct{})
	go func() { defer close(done); g.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); g.Stop(); <-done })
	return lrsv3.NewLoadReportingServiceClient(cc)
}

func endpointStats(addr string, port uint32, ok, failed, inProgress uint64, latencyMS float64) *endpointv3.UpstreamEndpointStats {
	return &endpointv3.UpstreamEndpointStats{
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		}}},
		TotalSuccessfulRequests: ok, TotalErrorRequests: failed, TotalIssuedRequests: ok + failed,
		TotalRequestsInProgress: inProgress,
		LoadMetricStats: []*endpointv3.EndpointLoadMetricStats{{
			MetricName: MetricLatencyMS, NumRequestsFinishedWithMetric: ok + failed, TotalMetricValue: latencyMS,
		}},
	}
}

func report(cluster, service string, eps ...*endpointv3.UpstreamEndpointStats) *endpointv3.ClusterStats {
	return &endpointv3.ClusterStats{
		ClusterName: cluster, ClusterServiceName: service,
		UpstreamLocalityStats: []*endpointv3.UpstreamLocalityStats{{UpstreamEndpointStats: eps}},
	}
}

func TestStreamLoadStats(t *testing.T) {
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	reg := metric.NewRegistry()
	s, err := New(Config{Interval: 3 * time.Second, Window: time.Minute, Registerer: reg, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	client := startServer(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()

	t.Run("tells the proxy to report every cluster per endpoint at the interval", func(t *testing.T) {
		stream, err := client.StreamLoadStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		node := &corev3.Node{Id: "web-1", Cluster: "web"}
		if err := stream.Send(&lrsv3.LoadStatsRequest{Node: node}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if !resp.GetSendAllClusters() || !resp.GetReportEndpointGranularity() || resp.GetLoadReportingInterval().AsDuration() != 3*time.Second {
			t.Fatalf("response = %v, want all clusters, endpoint granularity, 3s", resp)
		}
		// Two strategies of orders (the default cluster and orders/least_request)
		// add up to one edge web -> orders.
		for _, cs := range [][]*endpointv3.ClusterStats{
			{report("orders", "orders", endpointStats("127.0.0.1", 3001, 90, 10, 2, 500), endpointStats("127.0.0.1", 3002, 100, 0, 0, 300))},
			{report("orders/least_request", "orders", endpointStats("127.0.0.1", 3001, 50, 0, 1, 100))},
		} {
			if err := stream.Send(&lrsv3.LoadStatsRequest{Node: node, ClusterStats: cs}); err != nil {
				t.Fatal(err)
			}
		}
		want := Edge{Source: "web", Destination: "orders", Requests: 250, Errors: 10, Issued: 250, InProgress: 3,
			RPS: 250.0 / 60, MeanLatencyMS: 900.0 / 250}
		waitFor(t, ctx, func() bool { return len(s.Snapshot().Edges) == 1 && s.Snapshot().Edges[0].Requests == 250 })
		if diff := cmp.Diff(want, s.Snapshot().Edges[0]); diff != "" {
			t.Errorf("edge (-want +got):\n%s", diff)
		}
		eps := s.Snapshot().Endpoints
		if len(eps) != 3 || eps[0].Cluster != "orders" || eps[0].Address != "127.0.0.1:3001" || eps[0].Requests != 100 || eps[0].Errors != 10 {
			t.Errorf("endpoints = %+v", eps)
		}
		if got := s.edgeRequests.WithLabelValues("web", "orders", "success").Value(); got != 240 {
			t.Errorf("edge success counter = %v, want 240", got)
		}
		if got := s.edgeRequests.WithLabelValues("web", "orders", "error").Value(); got != 10 {
			t.Errorf("edge error counter = %v, want 10", got)
		}
		stream.CloseSend()
		if _, err := stream.Recv(); err == nil {
			t.Fatal("stream still open after CloseSend")
		}
		waitFor(t, ctx, func() bool { return s.Snapshot().Edges[0].InProgress == 0 })
	})

	t.Run("forgets reports older than the window", func(t *testing.T) {
		clk.advance(61 * time.Second)
		if snap := s.Snapshot(); len(snap.Edges) != 0 || len(snap.Endpoints) != 0 {
			t.Fatalf("snapshot after the window = %+v, want empty", snap)
		}
	})

	t.Run("refuses a stream that does not name its node", func(t *testing.T) {
		stream, err := client.StreamLoadStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&lrsv3.LoadStatsRequest{}); err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "node.id") {
			t.Fatalf("err = %v, want InvalidArgument naming node.id", err)
		}
	})
}

func waitFor(t *testing.T, ctx context.Context, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not met before the deadline")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Cluster variants keep their strategy: "<service>/<strategy>/balance-N"
// and a rule's own "<service>/<strategy>/cfg-<hash>" (issue 17).
func TestSplitClusterVariants(t *testing.T) {
	for cluster, want := range map[string][2]string{
		"orders":               {"orders", "round_robin"},
		"orders/least_request": {"orders", "least_request"},
		"orders[version=v2]/ring_hash/balance-125": {"orders", "ring_hash"},
		"orders/round_robin/cfg-5c70353e":          {"orders", "round_robin"},
	} {
		if svc, st := SplitCluster(cluster); svc != want[0] || st != want[1] {
			t.Errorf("SplitCluster(%q) = %q, %q, want %q, %q", cluster, svc, st, want[0], want[1])
		}
	}
}
