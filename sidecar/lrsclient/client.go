// Package lrsclient reports the proxy's load to the control plane over
// Envoy's Load Reporting Service (envoy.service.load_stats.v3,
// https://www.envoyproxy.io/docs/envoy/latest/api-v3/service/load_stats/v3/lrs.proto):
// per cluster and endpoint, the requests issued, succeeded and failed since
// the previous report, those in progress, and the sum of their latencies
// (as the named load metric "shoal.request_latency_ms"). The control plane
// turns the reports into golden metrics per edge and the dashboard.
//
// Messages are the sidecar's generated Envoy subset (sidecar/internal/xdspb),
// so the slim sidecar links no go-control-plane.
package lrsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	corev3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/core/v3"
	endpointv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/endpoint/v3"
	lrsv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/service/load_stats/v3"
)

// Method is LRS's one RPC.
const Method = "/envoy.service.load_stats.v3.LoadReportingService/StreamLoadStats"

// MetricLatencyMS names the load metric carrying the latency sum.
const MetricLatencyMS = "shoal.request_latency_ms"

// EndpointLoad is what a cluster sent one endpoint since the previous take.
type EndpointLoad struct {
	Address                   string // host:port
	Issued, Succeeded, Failed uint64
	InProgress                uint64 // now, not since
	LatencySum                time.Duration
	LatencyCount              uint64 // requests LatencySum covers
}

// ClusterLoad is the load of one cluster since the previous take.
type ClusterLoad struct {
	Cluster   string
	Endpoints []EndpointLoad
}

// Config configures a Client. It is copied by New.
type Config struct {
	// Conn is the channel to the control plane (the xDS server's). Required.
	Conn grpc.ClientConnInterface
	// Node is sent on each stream's first request. Required.
	Node *corev3.Node
	// Take returns the load since the previous call and resets it; it is
	// called from the client's goroutine once per interval. Required.
	Take func() []ClusterLoad
	// MinInterval bounds the server's load_reporting_interval from below;
	// zero means 1s.
	MinInterval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Client streams load reports until its Run's ctx is done, reconnecting
// with jittered backoff. It is driven by one goroutine (Run).
type Client struct {
	cfg Config
	log *slog.Logger
}

// New validates cfg.
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.Conn == nil:
		return nil, errors.New("lrsclient: Config.Conn is required")
	case cfg.Node.GetId() == "":
		return nil, errors.New("lrsclient: Config.Node.Id is required")
	case cfg.Take == nil:
		return nil, errors.New("lrsclient: Config.Take is required")
	}
	if cfg.MinInterval <= 0 {
		cfg.MinInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Client{cfg: cfg, log: cfg.Logger.With("component", "lrs")}, nil
}

var lrsStream = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// Run reports until ctx is done and returns nil then. A control plane that
// does not serve LRS (Unimplemented) is asked again after the backoff, so
// a rolling upgrade of the control planes needs no sidecar restart.
func (c *Client) Run(ctx context.Context) error {
	backoff := time.Second
	for ctx.Err() == nil {
		start := time.Now()
		err := c.stream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		c.log.Debug("load reporting stream ended; reconnecting", "err", err, "after", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff/2 + rand.N(backoff/2+1)):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
	return nil
}

// stream runs one LRS stream: it sends the node, waits for the server's
// interval and then reports every interval; a new server response may
// change the interval at any time.
func (c *Client) stream(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.cfg.Conn.NewStream(ctx, lrsStream, Method)
	if err != nil {
		return err
	}
	if err := s.SendMsg(&lrsv3.LoadStatsRequest{Node: c.cfg.Node}); err != nil {
		return fmt.Errorf("lrsclient: send: %w", err)
	}
	// One goroutine turns the blocking RecvMsg into a channel; it ends with
	// the stream (ctx is cancelled on return).
	intervals := make(chan time.Duration, 1)
	recvErr := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		for {
			resp := new(lrsv3.LoadStatsResponse)
			if err := s.RecvMsg(resp); err != nil {
				recvErr <- err
				return
			}
			d := max(resp.GetLoadReportingInterval().AsDuration(), c.cfg.MinInterval)
			select {
			case <-intervals: // keep only the newest
			default:
			}
			intervals <- d
		}
	})
	var tick *time.Ticker
	var tickC <-chan time.Time
	defer func() {
		if tick != nil {
			tick.Stop()
		}
	}()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-recvErr:
			return err
		case d := <-intervals:
			if tick == nil {
				c.cfg.Take() // start the first interval afresh
				last = time.Now()
				tick = time.NewTicker(d)
				tickC = tick.C
			} else {
				tick.Reset(d)
			}
		case now := <-tickC:
			req := &lrsv3.LoadStatsRequest{Node: c.cfg.Node, ClusterStats: Stats(c.cfg.Take(), now.Sub(last))}
			last = now
			if err := s.SendMsg(req); err != nil {
				return fmt.Errorf("lrsclient: send: %w", err)
			}
		}
	}
}

// Stats converts loads into LRS ClusterStats covering interval.
func Stats(loads []ClusterLoad, interval time.Duration) []*endpointv3.ClusterStats {
	out := make([]*endpointv3.ClusterStats, 0, len(loads))
	for _, cl := range loads {
		loc := &endpointv3.UpstreamLocalityStats{}
		for _, e := range cl.Endpoints {
			es := &endpointv3.UpstreamEndpointStats{
				Address:                 socketAddress(e.Address),
				TotalIssuedRequests:     e.Issued,
				TotalSuccessfulRequests: e.Succeeded,
				TotalErrorRequests:      e.Failed,
				TotalRequestsInProgress: e.InProgress,
			}
			if e.LatencyCount > 0 {
				es.LoadMetricStats = []*endpointv3.EndpointLoadMetricStats{{
					MetricName:                    MetricLatencyMS,
					NumRequestsFinishedWithMetric: e.LatencyCount,
					TotalMetricValue:              float64(e.LatencySum) / float64(time.Millisecond),
				}}
			}
			loc.UpstreamEndpointStats = append(loc.UpstreamEndpointStats, es)
			loc.TotalIssuedRequests += e.Issued
			loc.TotalSuccessfulRequests += e.Succeeded
			loc.TotalErrorRequests += e.Failed
			loc.TotalRequestsInProgress += e.InProgress
		}
		out = append(out, &endpointv3.ClusterStats{
			ClusterName:           cl.Cluster,
			UpstreamLocalityStats: []*endpointv3.UpstreamLocalityStats{loc},
			LoadReportInterval:    durationpb.New(interval),
		})
	}
	return out
}

func socketAddress(hostport string) *corev3.Address {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	p, _ := strconv.ParseUint(port, 10, 32)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)},
	}}}
}
