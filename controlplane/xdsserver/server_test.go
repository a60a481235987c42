package xdsserver

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/shoal-mesh/shoal/controlplane/xds"
	"github.com/shoal-mesh/shoal/internal/metric"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

const (
	defaultTestTimeout      = 10 * time.Second
	defaultTestShortTimeout = 50 * time.Millisecond
)

// startServer runs an xDS server on a loopback gRPC server and returns it
// with its address; everything stops at cleanup.
func startServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	if cfg.Debounce == 0 {
		cfg.Debounce = 2 * time.Millisecond
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(ServerOptions()...)
	srv.Register(g)
	serveDone := make(chan struct{})
	go func() { defer close(serveDone); g.Serve(lis) }()
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- srv.Run(ctx) }()
	t.Cleanup(func() {
		g.Stop()
		<-serveDone
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("Run() = %v", err)
		}
		srv.Close()
	})
	return srv, lis.Addr().String()
}

func dialADS(t *testing.T, addr string) discoveryv3.AggregatedDiscoveryServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return discoveryv3.NewAggregatedDiscoveryServiceClient(cc)
}

// deltaClient is a delta-xDS test client over a real ADS stream; one
// goroutine turns Recv into a channel and ends with the stream.
type deltaClient struct {
	t      *testing.T
	stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	node   *corev3.Node
	resps  chan *discoveryv3.DeltaDiscoveryResponse
}

func newDeltaClient(t *testing.T, addr string, node *corev3.Node) *deltaClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := dialADS(t, addr).DeltaAggregatedResources(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &deltaClient{t: t, stream: stream, resps: make(chan *discoveryv3.DeltaDiscoveryResponse, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			select {
			case c.resps <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	c.node = node
	return c
}

func (c *deltaClient) send(req *discoveryv3.DeltaDiscoveryRequest) {
	c.t.Helper()
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("Send() = %v", err)
	}
}

func (c *deltaClient) subscribe(typeURL string, names ...string) {
	c.t.Helper()
	c.send(&discoveryv3.DeltaDiscoveryRequest{Node: c.node, TypeUrl: typeURL, ResourceNamesSubscribe: names})
}

// recv waits for the next response and ACKs it.
func (c *deltaClient) recv() *discoveryv3.DeltaDiscoveryResponse {
	c.t.Helper()
	select {
	case r := <-c.resps:
		c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce()})
		return r
	case <-time.After(defaultTestTimeout):
		c.t.Fatal("no delta response")
	}
	return nil
}

func (c *deltaClient) expectNothing() {
	c.t.Helper()
	select {
	case r := <-c.resps:
		c.t.Fatalf("unexpected response: %s %v", r.GetTypeUrl(), resourceNames(r))
	case <-time.After(defaultTestShortTimeout):
	}
}

func resourceNames(r *discoveryv3.DeltaDiscoveryResponse) []string {
	var out []string
	for _, res := range r.GetResources() {
		out = append(out, res.GetName())
	}
	slices.Sort(out)
	return out
}

var envoyNode = &corev3.Node{Id: "sidecar-1", UserAgentName: "envoy"}

func TestServerDeltaSendsOnlyTheChangedAssignment(t *testing.T) {
	srv, addr := startServer(t, Config{})
	c := newDeltaClient(t, addr, envoyNode)
	c.subscribe(resource.EndpointType, "orders", "users")
	c.subscribe(resource.ClusterType) // wildcard

	// Nothing is served before the first full update.
	c.expectNothing()

	srv.Update(xds.Input{Endpoints: ordersFleet()})
	got := map[string][]string{}
	for range 2 {
		r := c.recv()
		got[r.GetTypeUrl()] = resourceNames(r)
	}
	want := map[string][]string{resource.EndpointType: {"orders", "users"}, resource.ClusterType: {"orders", "users"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("first responses (-want +got):\n%s", diff)
	}

	// The same state again: nothing is sent.
	srv.Update(xds.Input{Endpoints: ordersFleet()})
	c.expectNothing()

	// One endpoint changes: only its assignment is sent.
	eps := ordersFleet()
	eps[1].Health = registry.HealthUnhealthy
	srv.Update(xds.Input{Endpoints: eps})
	r := c.recv()
	if r.GetTypeUrl() != resource.EndpointType || !slices.Equal(resourceNames(r), []string{"orders"}) {
		t.Fatalf("got %s %v, want only the orders assignment", r.GetTypeUrl(), resourceNames(r))
	}
	cla := &endpointv3.ClusterLoadAssignment{}
	if err := r.GetResources()[0].GetResource().UnmarshalTo(cla); err != nil {
		t.Fatal(err)
	}
	res, _ := xds.Translate(xds.Input{Endpoints: eps}, xds.CapabilitiesEnvoy)
	var wantCLA types.Resource
	for _, r := range res.Endpoints {
		if cache.GetResourceName(r) == "orders" {
			wantCLA = r
		}
	}
	if diff := cmp.Diff(wantCLA, cla, protocmp.Transform()); diff != "" {
		t.Errorf("assignment (-want +got):\n%s", diff)
	}
	c.expectNothing()
}

func TestServerStatusTracksAcksAndRoutes(t *testing.T) {
	reg := metric.NewRegistry()
	srv, addr := startServer(t, Config{Registerer: reg})
	c := newDeltaClient(t, addr, &corev3.Node{Id: "grpc-1", UserAgentName: "gRPC Go", UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: "1.85.0"}})
	c.subscribe(resource.ClusterType, "orders")
	// The routes of the "rejected" golden case: only a-first is accepted.
	srv.Update(xds.Input{Endpoints: ordersFleet(), Routes: []*shoalv1.Route{
		route("a-first", []string{"orders"}, rule(shoalv1.Strategy_STRATEGY_ROUND_ROBIN, to("orders"))),
		route("b-same-host", []string{"orders"}, rule(shoalv1.Strategy_STRATEGY_LEAST_REQUEST, to("orders"))),
		route("ring-without-key", []string{"a.example.com"}, rule(shoalv1.Strategy_STRATEGY_RING_HASH, to("orders"))),
		route("bad-regex", []string{"b.example.com"}, &shoalv1.Rule{
			Match: &shoalv1.Match{Path: &shoalv1.Match_Regex{Regex: "(("}}, Destinations: []*shoalv1.Destination{to("orders")},
		}),
		route("bad-weight", []string{"c.example.com"}, rule(0, toW("orders", 0), toW("users", 0))),
		route("Bad_Name", []string{"d.example.com"}, rule(0, to("orders"))),
		route("no-rules", []string{"e.example.com"}),
	}})
	r := c.recv()
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()
	for {
		st := srv.Status()
		if len(st) == 1 && len(st[0].GetResources()) == 1 && st[0].GetResources()[0].GetAckedVersion() == r.GetSystemVersionInfo() {
			got := st[0]
			if got.GetNodeId() != "grpc-1" || got.GetUserAgent() != "gRPC Go/1.85.0" || !got.GetDelta() {
				t.Errorf("client = %v", got)
			}
			if got.GetResources()[0].GetLastPushToAck() == nil {
				t.Errorf("no push-to-ack latency: %v", got)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("status never showed the ACK: %v", st)
		case <-time.After(time.Millisecond):
		}
	}
	var accepted []string
	for _, rs := range srv.RouteStatuses() {
		if rs.GetAccepted() {
			accepted = append(accepted, rs.GetName())
		}
	}
	if !slices.Equal(accepted, []string{"a-first"}) {
		t.Errorf("accepted routes = %v, want [a-first]", accepted)
	}
	var names []string
	for _, f := range reg.Gather() {
		names = append(names, f.Name)
	}
	for _, want := range []string{"shoal_xds_push_to_ack_seconds", "shoal_xds_acks_total", "shoal_xds_pushed_bytes_total"} {
		if !slices.Contains(names, want) {
			t.Errorf("metric %s missing from %v", want, names)
		}
	}
}

// TestServerStatusShowsAResumedDeltaClient: a delta client that resumes
// after a control plane restart with up-to-date initial_resource_versions
// is sent nothing; `shoal status` must still show it holds its resources
// rather than an empty row.
func TestServerStatusShowsAResumedDeltaClient(t *testing.T) {
	srv, addr := startServer(t, Config{})
	srv.Update(xds.Input{Endpoints: ordersFleet()})
	first := newDeltaClient(t, addr, envoyNode)
	first.subscribe(resource.EndpointType, "orders", "users")
	held := map[string]string{}
	for _, res := range first.recv().GetResources() {
		held[res.GetName()] = res.GetVersion()
	}
	if len(held) != 2 {
		t.Fatalf("first client holds %v, want orders and users", held)
	}

	node := &corev3.Node{Id: "resumed-1", UserAgentName: "envoy"}
	c := newDeltaClient(t, addr, node)
	c.send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: resource.EndpointType,
		ResourceNamesSubscribe: []string{"orders", "users"}, InitialResourceVersions: held})
	c.expectNothing()
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()
	for {
		for _, cl := range srv.Status() {
			if cl.GetNodeId() != "resumed-1" || len(cl.GetResources()) != 1 {
				continue
			}
			if rs := cl.GetResources()[0]; rs.GetResumedResources() != 2 || rs.GetSentVersion() != "" {
				t.Fatalf("resumed client's status = %v, want 2 resumed resources and nothing sent", rs)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the resumed client is not in the status: %v", srv.Status())
		case <-time.After(time.Millisecond):
		}
	}
}

// TestServerNackIsRecorded sends a NACK and expects it in Status with its
// error detail.
func TestServerNackIsRecorded(t *testing.T) {
	srv, addr := startServer(t, Config{})
	c := newDeltaClient(t, addr, envoyNode)
	c.subscribe(resource.ClusterType, "orders")
	srv.Update(xds.Input{Endpoints: ordersFleet()})
	var r *discoveryv3.DeltaDiscoveryResponse
	select {
	case r = <-c.resps:
	case <-time.After(defaultTestTimeout):
		t.Fatal("no response")
	}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, ResponseNonce: r.GetNonce(),
		ErrorDetail: statusProto("cluster orders: unsupported lb_policy")})
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()
	for {
		st := srv.Status()
		if len(st) == 1 && len(st[0].GetResources()) == 1 && st[0].GetResources()[0].GetNackError() != "" {
			rs := st[0].GetResources()[0]
			if rs.GetNackedVersion() != r.GetSystemVersionInfo() || rs.GetNackError() != "cluster orders: unsupported lb_policy" {
				t.Errorf("resource status = %v", rs)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("status never showed the NACK: %v", st)
		case <-time.After(time.Millisecond):
		}
	}
}

// TestServerBytesPerEndpointChange measures what one endpoint change costs
// on the wire for delta and SotW clients with 100 services of 10 endpoints
// each, and checks that both get exactly the one changed assignment.
func TestServerBytesPerEndpointChange(t *testing.T) {
	var eps []registry.Endpoint
	var names []string
	for s := range 100 {
		svc := fmt.Sprintf("svc-%03d", s)
		names = append(names, svc)
		for i := range 10 {
			eps = append(eps, endpoint(svc, fmt.Sprintf("%s-%d", svc, i), fmt.Sprintf("10.%d.%d.%d", s/250, s%250, i+1), 8080, registry.HealthHealthy))
		}
	}
	srv, addr := startServer(t, Config{})
	dc := newDeltaClient(t, addr, envoyNode)
	dc.subscribe(resource.EndpointType, names...)
	sc := newSotwClient(t, addr, envoyNode)
	sc.subscribe(resource.EndpointType, names...)
	srv.Update(xds.Input{Endpoints: eps})
	full := proto.Size(dc.recv())
	sc.recv()

	changed := slices.Clone(eps)
	changed[57] = endpoint(eps[57].Service, eps[57].ID, eps[57].Address, eps[57].Port, registry.HealthDraining)
	srv.Update(xds.Input{Endpoints: changed})
	d := dc.recv()
	s := sc.recv()
	if len(d.GetResources()) != 1 || len(s.GetResources()) != 1 {
		t.Fatalf("delta sent %d assignments, SotW %d; want 1 each", len(d.GetResources()), len(s.GetResources()))
	}
	t.Logf("one endpoint change among 100 services x 10 endpoints: delta %d bytes, SotW %d bytes (all assignments: %d bytes)",
		proto.Size(d), proto.Size(s), full)
	if got, max := proto.Size(d), full/20; got > max {
		t.Errorf("delta response is %d bytes, want at most %d", got, max)
	}
}

// sotwClient is a SotW test client over a real ADS stream.
type sotwClient struct {
	t      *testing.T
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   *corev3.Node
	resps  chan *discoveryv3.DiscoveryResponse
	names  map[string][]string
}

func newSotwClient(t *testing.T, addr string, node *corev3.Node) *sotwClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := dialADS(t, addr).StreamAggregatedResources(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &sotwClient{t: t, stream: stream, node: node, resps: make(chan *discoveryv3.DiscoveryResponse, 16), names: map[string][]string{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			select {
			case c.resps <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func (c *sotwClient) subscribe(typeURL string, names ...string) {
	c.t.Helper()
	c.names[typeURL] = names
	if err := c.stream.Send(&discoveryv3.DiscoveryRequest{Node: c.node, TypeUrl: typeURL, ResourceNames: names}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *sotwClient) recv() *discoveryv3.DiscoveryResponse {
	c.t.Helper()
	select {
	case r := <-c.resps:
		if err := c.stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResourceNames: c.names[r.GetTypeUrl()],
			VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}); err != nil {
			c.t.Fatal(err)
		}
		return r
	case <-time.After(defaultTestTimeout):
		c.t.Fatal("no SotW response")
	}
	return nil
}

func statusProto(msg string) *rpcstatus.Status { return &rpcstatus.Status{Code: 3, Message: msg} }
