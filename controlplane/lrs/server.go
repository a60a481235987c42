package lrs

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-mesh/shoal/internal/metric"
)

// MetricLatencyMS is the named load metric in which a shoal proxy reports
// the sum of its request latencies, in milliseconds, per endpoint.
const MetricLatencyMS = "shoal.request_latency_ms"

// Config configures a Server. It is copied by New and never mutated.
type Config struct {
	// Interval is the load_reporting_interval asked of proxies; zero means
	// 2s.
	Interval time.Duration
	// Window is how long reports are kept for Snapshot; zero means 1m.
	Window time.Duration
	// Registerer receives the per-edge counters; nil registers nothing.
	Registerer metric.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server implements lrsv3.LoadReportingServiceServer and keeps the reports
// of the last Window. It is safe for concurrent use.
type Server struct {
	lrsv3.UnimplementedLoadReportingServiceServer

	cfg Config
	log *slog.Logger

	edgeRequests *metric.CounterVec // source, destination, result
	streams      *metric.Gauge
	reports      *metric.Counter

	// mu guards edges and endpoints.
	mu        sync.Mutex
	edges     map[edgeKey]*series
	endpoints map[endpointKey]*series
}

var _ lrsv3.LoadReportingServiceServer = (*Server)(nil)

type edgeKey struct{ source, destination string }

type endpointKey struct{ source, cluster, address string }

// New returns a Server; its metrics are registered on cfg.Registerer.
func New(cfg Config) (*Server, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg: cfg,
		log: cfg.Logger.With("component", "lrs"),
		edgeRequests: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_controlplane_edge_requests_total",
			Help: "Requests from a source service to a destination service as reported by proxies over LRS; result is success or error.",
		}, []string{"source", "destination", "result"}),
		streams: metric.NewGauge(metric.GaugeOpts{
			Name: "shoal_controlplane_lrs_streams", Help: "Open load reporting streams.",
		}),
		reports: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_controlplane_lrs_reports_total", Help: "Load reports received.",
		}),
		edges:     map[edgeKey]*series{},
		endpoints: map[endpointKey]*series{},
	}
	if cfg.Registerer != nil {
		for _, c := range []metric.Collector{s.edgeRequests, s.streams, s.reports} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("lrs: register metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Register adds the service to a gRPC server.
func (s *Server) Register(g grpc.ServiceRegistrar) { lrsv3.RegisterLoadReportingServiceServer(g, s) }

// StreamLoadStats implements the LRS stream: the first request names the
// node; the server answers with what to report and how often, then adds
// every report to the window.
func (s *Server) StreamLoadStats(stream grpc.BidiStreamingServer[lrsv3.LoadStatsRequest, lrsv3.LoadStatsResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	node := first.GetNode()
	if node.GetId() == "" {
		return status.Error(codes.InvalidArgument, "lrs: the first request must name the node (node.id)")
	}
	source := sourceOf(node)
	s.streams.Inc()
	defer s.streams.Dec()
	defer s.forgetNode(node.GetId())
	if err := stream.Send(&lrsv3.LoadStatsResponse{
		SendAllClusters:           true,
		LoadReportingInterval:     durationpb.New(s.cfg.Interval),
		ReportEndpointGranularity: true,
	}); err != nil {
		return err
	}
	req := first
	for {
		s.record(node.GetId(), source, req.GetClusterStats())
		req, err = stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// sourceOf names the service a node proxies for: its cluster (a shoal
// sidecar sets it to its service), else its id.
func sourceOf(n *corev3.Node) string {
	if c := n.GetCluster(); c != "" {
		return c
	}
	return n.GetId()
}

// destinationOf maps a reported cluster to its service.
func destinationOf(cs *endpointv3.ClusterStats) string {
	name := cs.GetClusterServiceName()
	if name == "" {
		name = cs.GetClusterName()
	}
	service, _ := SplitCluster(name)
	return service
}

// SplitCluster splits a cluster name of the xDS naming contract
// (<service>, <service>/<strategy>, subsets <service>[k=v]/<strategy>,
// and variants <service>/<strategy>/balance-N or /cfg-<hash>) into the
// service and the strategy; the default cluster is round robin.
func SplitCluster(cluster string) (service, strategy string) {
	name, strategy, ok := strings.Cut(cluster, "/")
	if !ok {
		strategy = "round_robin"
	}
	strategy, _, _ = strings.Cut(strategy, "/")
	service, _, _ = strings.Cut(name, "[")
	return service, strategy
}

func (s *Server) record(node, source string, stats []*endpointv3.ClusterStats) {
	if len(stats) == 0 {
		return
	}
	s.reports.Inc()
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cs := range stats {
		dst := destinationOf(cs)
		if dst == "" {
			continue
		}
		var total counts
		var inProgress uint64
		for _, loc := range cs.GetUpstreamLocalityStats() {
			if len(loc.GetUpstreamEndpointStats()) == 0 {
				total.add(localityCounts(loc))
				inProgress += loc.GetTotalRequestsInProgress()
				continue
			}
			for _, ep := range loc.GetUpstreamEndpointStats() {
				c := endpointCounts(ep)
				total.add(c)
				inProgress += ep.GetTotalRequestsInProgress()
				key := endpointKey{source: source, cluster: cs.GetClusterName(), address: addressOf(ep.GetAddress())}
				ser := s.endpoints[key]
				if ser == nil {
					ser = newSeries()
					s.endpoints[key] = ser
				}
				ser.add(now, node, c, ep.GetTotalRequestsInProgress())
			}
		}
		ek := edgeKey{source: source, destination: dst}
		ser := s.edges[ek]
		if ser == nil {
			ser = newSeries()
			s.edges[ek] = ser
		}
		// Requests in progress are a gauge per proxy and cluster (several
		// strategy clusters make one edge).
		ser.add(now, node+"\x00"+cs.GetClusterName(), total, inProgress)
		if total.success > 0 {
			s.edgeRequests.WithLabelValues(source, dst, "success").Add(uint64(total.success))
		}
		if total.errors > 0 {
			s.edgeRequests.WithLabelValues(source, dst, "error").Add(uint64(total.errors))
		}
	}
	s.pruneLocked(now)
}

func localityCounts(l *endpointv3.UpstreamLocalityStats) counts {
	c := counts{issued: l.GetTotalIssuedRequests(), success: l.GetTotalSuccessfulRequests(), errors: l.GetTotalErrorRequests()}
	c.latencyMS, c.latencyN = latencyOf(l.GetLoadMetricStats())
	return c
}

func endpointCounts(e *endpointv3.UpstreamEndpointStats) counts {
	c := counts{issued: e.GetTotalIssuedRequests(), success: e.GetTotalSuccessfulRequests(), errors: e.GetTotalErrorRequests()}
	c.latencyMS, c.latencyN = latencyOf(e.GetLoadMetricStats())
	return c
}

func latencyOf(ms []*endpointv3.EndpointLoadMetricStats) (float64, uint64) {
	for _, m := range ms {
		if m.GetMetricName() == MetricLatencyMS {
			return m.GetTotalMetricValue(), m.GetNumRequestsFinishedWithMetric()
		}
	}
	return 0, 0
}

func addressOf(a *corev3.Address) string {
	sa := a.GetSocketAddress()
	if sa == nil {
		return ""
	}
	return net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
}

func (s *Server) pruneLocked(now time.Time) {
	since := now.Add(-s.cfg.Window)
	for k, ser := range s.edges {
		if ser.prune(since) {
			delete(s.edges, k)
		}
	}
	for k, ser := range s.endpoints {
		if ser.prune(since) {
			delete(s.endpoints, k)
		}
	}
}

// forgetNode drops a closed stream's requests in progress.
func (s *Server) forgetNode(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ser := range s.edges {
		for k := range ser.inProgress {
			if n, _, _ := strings.Cut(k, "\x00"); n == node {
				delete(ser.inProgress, k)
			}
		}
	}
	for _, ser := range s.endpoints {
		delete(ser.inProgress, node)
	}
}

// Edge is the traffic from one service to another over the window.
type Edge struct {
	Source, Destination string
	// Requests counts the requests completed (succeeded or failed); Issued
	// those sent; InProgress those outstanding at the last reports.
	Requests, Errors, Issued, InProgress uint64
	// RPS is Requests per second over the window.
	RPS float64
	// MeanLatencyMS is the mean request latency where proxies report it,
	// else 0.
	MeanLatencyMS float64
}

// EndpointLoad is the traffic one proxy's cluster sent to one endpoint
// over the window.
type EndpointLoad struct {
	Source, Cluster, Address             string
	Requests, Errors, Issued, InProgress uint64
	RPS                                  float64
}

// Snapshot is the traffic of the last Window.
type Snapshot struct {
	Window    time.Duration
	Edges     []Edge
	Endpoints []EndpointLoad
}

// Snapshot returns the traffic seen over the last Window, sorted by source,
// destination (cluster) and address. The result is the caller's.
func (s *Server) Snapshot() Snapshot {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(now)
	secs := s.cfg.Window.Seconds()
	snap := Snapshot{Window: s.cfg.Window}
	for k, ser := range s.edges {
		c := ser.sum()
		e := Edge{
			Source: k.source, Destination: k.destination,
			Requests: c.success + c.errors, Errors: c.errors, Issued: c.issued, InProgress: ser.inFlight(),
			RPS: float64(c.success+c.errors) / secs,
		}
		if c.latencyN > 0 {
			e.MeanLatencyMS = c.latencyMS / float64(c.latencyN)
		}
		snap.Edges = append(snap.Edges, e)
	}
	for k, ser := range s.endpoints {
		c := ser.sum()
		snap.Endpoints = append(snap.Endpoints, EndpointLoad{
			Source: k.source, Cluster: k.cluster, Address: k.address,
			Requests: c.success + c.errors, Errors: c.errors, Issued: c.issued, InProgress: ser.inFlight(),
			RPS: float64(c.success+c.errors) / secs,
		})
	}
	slices.SortFunc(snap.Edges, func(a, b Edge) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Destination, b.Destination))
	})
	slices.SortFunc(snap.Endpoints, func(a, b EndpointLoad) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Cluster, b.Cluster), cmp.Compare(a.Address, b.Address))
	})
	return snap
}
