package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// subscribed are the types every simulated client subscribes to, all as
// wildcards, in the order Envoy asks for them on ADS.
var subscribed = []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}

// change is the endpoint change in flight: clients look for marker in the
// resources they receive. It is written by the churn loop only.
type change struct {
	seq     int
	marker  []byte    // an address that appears only in this change
	written time.Time // when the etcd Put was issued
}

// seen is one client's receipt (and ACK) of one change.
type seen struct {
	seq     int
	client  int
	delta   bool
	latency time.Duration // etcd Put issued → ACK of the response holding the change sent
	bytes   int64         // response bytes this client received for the change
}

// client is one simulated xDS client on its own gRPC connection and ADS
// stream. Its goroutine owns all fields below conn.
type client struct {
	id    int
	delta bool
	node  *corev3.Node
	cur   *atomic.Pointer[change]
	out   chan<- seen // results; buffered by the owner, never blocks for long

	// synced is closed once a response arrived for every subscribed type.
	synced   chan struct{}
	isSynced bool
	// done is closed when the client's stream has ended.
	done chan struct{}
	// typesMask has bit i set once a response of subscribed[i] arrived; the
	// report reads it while the client runs.
	typesMask atomic.Uint32
	types     map[string]int // responses per type
	initSize  int64          // bytes received until synced

	accSeq   int   // the change acc counts bytes for
	acc      int64 // bytes received since that change was written
	seenSeq  int   // last change seen
	failedMu sync.Mutex
	failed   error // why the stream ended, if it did
}

// userAgents is the node mix: 60 % shoal sidecars, 20 % Envoy, 15 %
// grpc-go and 5 % grpc-js proxyless clients, which get different
// capability profiles (controlplane/xds/capabilities.go).
func userAgent(i int) string {
	switch m := i % 20; {
	case m < 12:
		return "shoal-sidecar"
	case m < 16:
		return "envoy"
	case m < 19:
		return "gRPC Go"
	}
	return "grpc-node-js"
}

func newClient(id int, delta bool, services int, cur *atomic.Pointer[change], out chan<- seen) *client {
	svc := serviceName(id % max(1, services))
	md, _ := structpb.NewStruct(map[string]any{"service": svc, "zone": fmt.Sprintf("zone-%c", 'a'+id%3), "version": "v1"})
	return &client{
		id: id, delta: delta, cur: cur, out: out,
		node: &corev3.Node{
			Id: fmt.Sprintf("cpbench-%05d", id), Cluster: svc, UserAgentName: userAgent(id),
			UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: "cpbench"}, Metadata: md,
		},
		synced: make(chan struct{}), done: make(chan struct{}), types: map[string]int{}, seenSeq: -1, accSeq: -1,
	}
}

// run dials addr and serves the ADS stream until ctx ends or the stream
// fails; the failure is kept for the report.
func (c *client) run(ctx context.Context, addr string) {
	defer close(c.done)
	err := c.stream(ctx, addr)
	if ctx.Err() == nil && err != nil {
		c.failedMu.Lock()
		c.failed = err
		c.failedMu.Unlock()
	}
}

func (c *client) err() error {
	c.failedMu.Lock()
	defer c.failedMu.Unlock()
	return c.failed
}

func (c *client) stream(ctx context.Context, addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		return err
	}
	defer conn.Close()
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	if c.delta {
		return c.runDelta(ctx, ads)
	}
	return c.runSotW(ctx, ads)
}

func (c *client) runSotW(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient) error {
	st, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	for i, t := range subscribed {
		req := &discoveryv3.DiscoveryRequest{TypeUrl: t}
		if i == 0 {
			req.Node = c.node
		}
		if err := st.Send(req); err != nil {
			return fmt.Errorf("sotw send: %w", err)
		}
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return fmt.Errorf("sotw recv: %w", err)
		}
		size := int64(proto.Size(resp))
		// ACK: the version and nonce just received, same (wildcard) names.
		ack := &discoveryv3.DiscoveryRequest{TypeUrl: resp.TypeUrl, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}
		if err := st.Send(ack); err != nil {
			return fmt.Errorf("sotw ack: %w", err)
		}
		c.received(resp.TypeUrl, size, containsAny(resp.Resources))
	}
}

func (c *client) runDelta(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient) error {
	st, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		return err
	}
	for i, t := range subscribed {
		// No names on the first request of a type: a wildcard subscription
		// (xDS protocol, "How the client specifies what resources to return").
		req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t}
		if i == 0 {
			req.Node = c.node
		}
		if err := st.Send(req); err != nil {
			return fmt.Errorf("delta send: %w", err)
		}
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return fmt.Errorf("delta recv: %w", err)
		}
		size := int64(proto.Size(resp))
		if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.TypeUrl, ResponseNonce: resp.Nonce}); err != nil {
			return fmt.Errorf("delta ack: %w", err)
		}
		c.received(resp.TypeUrl, size, func(marker []byte) bool {
			for _, r := range resp.Resources {
				if r.Resource != nil && bytes.Contains(r.Resource.Value, marker) {
					return true
				}
			}
			return false
		})
	}
}

func containsAny(res []*anypb.Any) func([]byte) bool {
	return func(marker []byte) bool {
		for _, a := range res {
			if bytes.Contains(a.Value, marker) {
				return true
			}
		}
		return false
	}
}

// received accounts one response (already ACKed) of typ and size, and
// reports the change in flight if has finds its marker.
func (c *client) received(typ string, size int64, has func([]byte) bool) {
	now := time.Now()
	c.types[typ]++
	if i := slices.Index(subscribed, typ); i >= 0 {
		c.typesMask.Or(1 << i)
	}
	if !c.isSynced {
		c.initSize += size
		if len(c.types) == len(subscribed) {
			c.isSynced = true
			close(c.synced)
		}
	}
	ch := c.cur.Load()
	if ch == nil || ch.seq == c.seenSeq || now.Before(ch.written) {
		return
	}
	if c.accSeq != ch.seq {
		c.accSeq, c.acc = ch.seq, 0
	}
	c.acc += size
	if has(ch.marker) {
		c.seenSeq = ch.seq
		c.out <- seen{seq: ch.seq, client: c.id, delta: c.delta, latency: now.Sub(ch.written), bytes: c.acc}
	}
}
