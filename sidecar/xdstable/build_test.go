package xdstable_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-mesh/shoal/controlplane/xds"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/sidecar/internal/xdsres"
	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/route"
	"github.com/shoal-mesh/shoal/sidecar/xdsclient"
	"github.com/shoal-mesh/shoal/sidecar/xdstable"
)

func endpoint(service, id string, port int, h registry.Health, meta map[string]string) registry.Endpoint {
	return registry.Endpoint{Instance: &registry.Instance{ID: id, Service: service, Address: "127.0.0.1", Port: port,
		Protocol: "http", Zone: "local", Weight: 1, Metadata: meta}, Health: h}
}

// snapshotOf translates in for the shoal sidecar, as the control plane does,
// and packs the resources as the xDS client delivers them: encoded by the
// generated code, decoded by the sidecar's generated subset.
func snapshotOf(t *testing.T, in xds.Input) *xdsclient.Snapshot {
	t.Helper()
	res, _ := xds.Translate(in, xds.CapabilitiesEnvoy)
	raw := map[string]map[string][]byte{}
	add := func(typeURL string, rs []types.Resource) {
		raw[typeURL] = map[string][]byte{}
		for _, r := range rs {
			b, err := proto.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			d, err := xdsres.Decode(typeURL, b) // as the client accepts it
			if err != nil {
				t.Fatalf("decode %s: %v", typeURL, err)
			}
			raw[typeURL][xdsres.Name(d)] = b
		}
	}
	add(xdsclient.ListenerType, res.Listeners)
	add(xdsclient.RouteType, res.Routes)
	add(xdsclient.ClusterType, res.Clusters)
	add(xdsclient.EndpointType, res.Endpoints)
	return xdsclient.NewSnapshot(raw)
}

func request(host, path string) *route.Request {
	return &route.Request{Method: []byte("GET"), Host: []byte(host), Path: []byte(path)}
}

func healthyAddrs(c *route.Cluster) []string {
	var out []string
	for _, e := range c.Endpoints {
		if e.Healthy {
			out = append(out, e.Address)
		}
	}
	return out
}

func TestBuildRoutesEveryServiceByHostWithItsStrategy(t *testing.T) {
	in := xds.Input{
		Endpoints: []registry.Endpoint{
			endpoint("orders", "orders-1", 3001, registry.HealthUnknown, nil),
			endpoint("orders", "orders-2", 3002, registry.HealthHealthy, nil),
			endpoint("orders", "orders-3", 3003, registry.HealthUnhealthy, nil),
			endpoint("users", "users-1", 4001, registry.HealthHealthy, nil),
		},
		Routes: []*shoalv1.Route{{
			Name: "users", Hosts: []string{"users"},
			Rules: []*shoalv1.Rule{{
				Destinations: []*shoalv1.Destination{{Service: "users"}},
				Strategy:     shoalv1.Strategy_STRATEGY_RING_HASH,
				HashKey:      &shoalv1.HashKey{Key: &shoalv1.HashKey_Header{Header: "x-user"}},
				Timeout:      durationpb.New(2e9),
				Retry:        &shoalv1.RetryPolicy{Attempts: 3, RetryOn: []string{"5xx"}},
			}},
		}},
	}
	tbl, err := xdstable.Build(snapshotOf(t, in), xdstable.Options{RouteConfig: "outbound"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}

	// A service with no route is reachable by its name, round robin.
	r := tbl.Match(request("orders:8080", "/x"))
	if r == nil {
		t.Fatal("no route for host orders")
	}
	c := r.PickCluster()
	if c == nil || c.Name != "orders" || c.LB.Name() != lb.RoundRobin {
		t.Fatalf("orders cluster = %+v", c)
	}
	if got := healthyAddrs(c); len(got) != 2 {
		t.Errorf("healthy orders endpoints = %v, want the two routable ones (unhealthy excluded)", got)
	}

	r = tbl.Match(request("users", "/"))
	if r == nil {
		t.Fatal("no route for host users")
	}
	c = r.PickCluster()
	if c == nil || c.LB.Name() != lb.RingHash {
		t.Fatalf("users cluster = %+v, want ring hash", c)
	}
	if len(r.Hash) != 1 || r.Hash[0].Kind != route.HashHeader || r.Hash[0].Name != "x-user" {
		t.Errorf("hash policy = %+v, want header x-user", r.Hash)
	}
	if r.Timeout != 2e9 || r.Retry == nil || r.Retry.NumRetries != 3 || !r.Retry.Has(route.Retry5xx) {
		t.Errorf("timeout %v retry %+v, want 2s and 3 retries on 5xx", r.Timeout, r.Retry)
	}
	if tbl.Match(request("nope", "/")) != nil {
		t.Errorf("unknown host matched a route")
	}
}

func TestBuildAppliesTheGossipOverlayAndLocalApp(t *testing.T) {
	in := xds.Input{Endpoints: []registry.Endpoint{
		endpoint("orders", "orders-1", 3001, registry.HealthUnknown, nil),
		endpoint("orders", "orders-2", 3002, registry.HealthUnknown, nil),
	}}
	tbl, err := xdstable.Build(snapshotOf(t, in), xdstable.Options{
		RouteConfig: "outbound",
		LocalApp:    &route.Endpoint{Address: "127.0.0.1:9999", Healthy: true},
		Gossip: func(service, id string) xdstable.Verdict {
			if service == "orders" && id == "orders-2" {
				return xdstable.VerdictOut
			}
			return xdstable.VerdictRoutable
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := healthyAddrs(tbl.Cluster("orders")); len(got) != 1 || got[0] != "127.0.0.1:3001" {
		t.Errorf("healthy = %v, want only orders-1 (gossip took orders-2 out)", got)
	}
	if c := tbl.Cluster(xdstable.LocalAppCluster); c == nil || len(c.Endpoints) != 1 {
		t.Errorf("local app cluster = %+v", c)
	}
}

func TestBuildSplitsTrafficByWeight(t *testing.T) {
	in := xds.Input{
		Endpoints: []registry.Endpoint{
			endpoint("web", "web-1", 3001, 0, map[string]string{"version": "v1"}),
			endpoint("web", "web-2", 3002, 0, map[string]string{"version": "v2"}),
		},
		Routes: []*shoalv1.Route{{
			Name: "web", Hosts: []string{"web"},
			Rules: []*shoalv1.Rule{{Destinations: []*shoalv1.Destination{
				{Service: "web", Subset: map[string]string{"version": "v1"}, Weight: 90},
				{Service: "web", Subset: map[string]string{"version": "v2"}, Weight: 10},
			}}},
		}},
	}
	tbl, err := xdstable.Build(snapshotOf(t, in), xdstable.Options{RouteConfig: "outbound"})
	if err != nil {
		t.Fatal(err)
	}
	r := tbl.Match(request("web", "/"))
	if r == nil || len(r.Clusters) != 2 {
		t.Fatalf("route = %+v, want a two-way split", r)
	}
	counts := map[string]int{}
	for range 10000 {
		c := r.PickCluster()
		counts[healthyAddrs(c)[0]]++
	}
	if v1 := counts["127.0.0.1:3001"]; v1 < 8500 || v1 > 9500 {
		t.Errorf("v1 got %d of 10000, want about 9000 (90/10 split)", v1)
	}
}

func TestBuildKeepsSuspectsWhenNothingElseIsLeft(t *testing.T) {
	in := xds.Input{Endpoints: []registry.Endpoint{
		endpoint("orders", "orders-1", 3001, registry.HealthUnknown, nil),
		endpoint("orders", "orders-2", 3002, registry.HealthSuspect, nil), // the control plane suspects it
		endpoint("orders", "orders-3", 3003, registry.HealthDead, nil),
	}}
	tests := []struct {
		name   string
		gossip map[string]xdstable.Verdict
		want   []string
	}{
		{"suspects leave the rotation while another instance can serve",
			map[string]xdstable.Verdict{"orders-1": xdstable.VerdictRoutable, "orders-2": xdstable.VerdictSuspect},
			[]string{"127.0.0.1:3001"}},
		{"every instance suspected: suspects stay in rotation, the dead one does not",
			map[string]xdstable.Verdict{"orders-1": xdstable.VerdictSuspect, "orders-2": xdstable.VerdictSuspect, "orders-3": xdstable.VerdictOut},
			[]string{"127.0.0.1:3001", "127.0.0.1:3002"}},
		{"hard evidence is never overridden",
			map[string]xdstable.Verdict{"orders-1": xdstable.VerdictOut, "orders-2": xdstable.VerdictOut, "orders-3": xdstable.VerdictOut},
			nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tbl, err := xdstable.Build(snapshotOf(t, in), xdstable.Options{RouteConfig: "outbound",
				Gossip: func(_, id string) xdstable.Verdict { return tc.gossip[id] }})
			if err != nil {
				t.Fatal(err)
			}
			got := healthyAddrs(tbl.Cluster("orders"))
			if len(got) != len(tc.want) || (len(got) > 0 && strings.Join(got, ",") != strings.Join(tc.want, ",")) {
				t.Errorf("healthy = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestBuildReadsClusterAndMatchSettings covers the fields the table takes
// from clusters and routes: lb policy configs, circuit breakers, outlier
// detection, connect timeout, HTTP/2 upstreams, method and header matches.
func TestBuildReadsClusterAndMatchSettings(t *testing.T) {
	grpcEP := endpoint("grpcsvc", "g-1", 50051, registry.HealthHealthy, nil)
	grpcEP.Protocol = "grpc"
	in := xds.Input{
		Endpoints: []registry.Endpoint{endpoint("orders", "orders-1", 3001, registry.HealthHealthy, nil), grpcEP},
		Routes: []*shoalv1.Route{
			{Name: "lr", Hosts: []string{"lr"}, Rules: []*shoalv1.Rule{{
				Match: &shoalv1.Match{
					Path:    &shoalv1.Match_Prefix{Prefix: "/api/"},
					Methods: []string{"GET", "POST"},
					Headers: []*shoalv1.HeaderMatch{
						{Name: "X-Canary", Value: &shoalv1.HeaderMatch_Exact{Exact: "1"}},
						{Name: "x-debug", Invert: true},
						{Name: "x-tenant", Value: &shoalv1.HeaderMatch_Regex{Regex: "^t-[0-9]+$"}},
					},
				},
				Destinations: []*shoalv1.Destination{{Service: "orders"}},
				Strategy:     shoalv1.Strategy_STRATEGY_LEAST_REQUEST,
			}}},
			{Name: "mg", Hosts: []string{"mg"}, Rules: []*shoalv1.Rule{{
				Destinations: []*shoalv1.Destination{{Service: "orders"}},
				Strategy:     shoalv1.Strategy_STRATEGY_MAGLEV,
				HashKey:      &shoalv1.HashKey{Key: &shoalv1.HashKey_Cookie{Cookie: "session"}},
			}}},
			{Name: "ll", Hosts: []string{"ll"}, Rules: []*shoalv1.Rule{{
				Destinations: []*shoalv1.Destination{{Service: "orders"}},
				Strategy:     shoalv1.Strategy_STRATEGY_LEAST_LOADED,
			}}},
			{Name: "ip", Hosts: []string{"ip"}, Rules: []*shoalv1.Rule{{
				Match:        &shoalv1.Match{Path: &shoalv1.Match_Exact{Exact: "/x"}},
				Destinations: []*shoalv1.Destination{{Service: "orders"}},
				Strategy:     shoalv1.Strategy_STRATEGY_IP_HASH,
				HashKey:      &shoalv1.HashKey{Key: &shoalv1.HashKey_SourceIp{SourceIp: true}},
			}}},
		},
	}
	tbl, err := xdstable.Build(snapshotOf(t, in), xdstable.Options{RouteConfig: "outbound"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}

	c := tbl.Cluster("orders/least_request")
	if c == nil || c.LB.Name() != lb.LeastRequest || c.LBConfig.LeastRequest.ChoiceCount != 2 {
		t.Fatalf("least request cluster = %+v", c)
	}
	if c.MaxRequests != 1024 || c.ConnectTimeout != 2e9 || c.LBConfig.PanicThreshold != 0 || c.Protocol != route.HTTP1 {
		t.Errorf("cluster limits: max requests %d, connect timeout %v, panic %v, protocol %v", c.MaxRequests, c.ConnectTimeout, c.LBConfig.PanicThreshold, c.Protocol)
	}
	if o := c.Outlier; o.Disabled || o.Consecutive5xx != 5 || o.ConsecutiveConnectFailures != 5 || o.BaseEjectionTime != 30e9 || o.MaxEjectionPercent != 50 {
		t.Errorf("outlier detection = %+v", o)
	}
	if c := tbl.Cluster("orders/least_loaded"); c == nil || c.LB.Name() != lb.LeastLoaded ||
		c.LBConfig.LeastLoaded.BlackoutPeriod != time.Second || c.LBConfig.LeastLoaded.WeightExpirationPeriod != 3*time.Minute ||
		c.LBConfig.LeastLoaded.WeightUpdatePeriod != time.Second || c.LBConfig.LeastLoaded.ErrorUtilizationPenalty != 1 {
		t.Errorf("least loaded cluster = %+v", c)
	}
	if c := tbl.Cluster("orders/maglev"); c == nil || c.LB.Name() != lb.Maglev {
		t.Errorf("maglev cluster = %+v", c)
	}
	if c := tbl.Cluster("orders/ring_hash"); c == nil || c.LB.Name() != lb.RingHash ||
		c.LBConfig.RingHash.MinRingSize != 1024 || c.LBConfig.RingHash.MaxRingSize != 8*1024*1024 || c.LBConfig.RingHash.HashesPerWeight != xdstable.RingHashesPerWeight {
		t.Errorf("ring hash cluster = %+v", c)
	}
	if c := tbl.Cluster("grpcsvc"); c == nil || c.Protocol != route.HTTP2 {
		t.Errorf("grpc cluster = %+v, want HTTP/2 upstream", c)
	}

	req := request("lr", "/api/v1")
	req.Method = []byte("POST")
	req.Headers = []route.HeaderField{{Name: []byte("x-canary"), Value: []byte("1")}, {Name: []byte("x-tenant"), Value: []byte("t-42")}}
	r := tbl.Match(req)
	if r == nil || r.PickCluster().Name != "orders/least_request" {
		t.Fatalf("route for a matching request = %+v", r)
	}
	if m := r.Match; m.PathPrefix != "/api/" || strings.Join(m.Methods, ",") != "GET,POST" || len(m.Headers) != 3 ||
		m.Headers[0].Exact != "1" || !m.Headers[1].Invert || !m.Headers[1].Present || m.Headers[2].Regex != "^t-[0-9]+$" {
		t.Errorf("match = %+v", m)
	}
	if r := tbl.Match(request("mg", "/")); r == nil || len(r.Hash) != 1 || r.Hash[0].Kind != route.HashCookie || r.Hash[0].Name != "session" {
		t.Errorf("maglev route hash = %+v", r)
	}
	if r := tbl.Match(request("ip", "/x")); r == nil || r.Match.Path != "/x" || len(r.Hash) != 1 || r.Hash[0].Kind != route.HashSourceIP {
		t.Errorf("ip hash route = %+v", r)
	}
}

// The control plane writes gRPC retry conditions into the same retry_on
// string as the HTTP ones, as Envoy takes them; the sidecar reads both.
func TestBuildReadsGRPCRetryConditions(t *testing.T) {
	grpcEP := endpoint("users", "users-1", 50051, registry.HealthHealthy, nil)
	grpcEP.Protocol = "grpc"
	in := xds.Input{
		Endpoints: []registry.Endpoint{grpcEP},
		Routes: []*shoalv1.Route{{
			Name: "users", Hosts: []string{"users"},
			Rules: []*shoalv1.Rule{{
				Destinations: []*shoalv1.Destination{{Service: "users"}},
				Retry: &shoalv1.RetryPolicy{Attempts: 2, PerTryTimeout: durationpb.New(5e8), RetryOn: []string{
					"reset", "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
				}},
			}},
		}},
	}
	tbl, err := xdstable.Build(snapshotOf(t, in), xdstable.Options{RouteConfig: "outbound"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	r := tbl.Match(request("users", "/users.v1.Users/Get"))
	if r == nil || r.Retry == nil {
		t.Fatalf("route = %+v, want a retry policy", r)
	}
	want := route.RetryReset | route.RetryGRPCCancelled | route.RetryGRPCDeadlineExceeded | route.RetryGRPCInternal |
		route.RetryGRPCResourceExhausted | route.RetryGRPCUnavailable
	if r.Retry.On != want || r.Retry.NumRetries != 2 || r.Retry.PerTryTimeout != 5e8 {
		t.Errorf("retry policy = %+v, want conditions %b, 2 retries, 500ms per try", r.Retry, want)
	}
}

// A rule's timeout reaches the sidecar: none given is Envoy's 15 s
// default, an explicit 0s disables it (long uploads, downloads, event
// streams), through the control plane's translation and the sidecar's
// decoding alike.
func TestBuildRouteTimeoutDefaultAndDisabled(t *testing.T) {
	rule := func(timeout *durationpb.Duration) []*shoalv1.Rule {
		return []*shoalv1.Rule{{Destinations: []*shoalv1.Destination{{Service: "users"}}, Timeout: timeout}}
	}
	in := xds.Input{
		Endpoints: []registry.Endpoint{endpoint("users", "users-1", 4001, registry.HealthHealthy, nil)},
		Routes: []*shoalv1.Route{
			{Name: "unset", Hosts: []string{"unset.example.com"}, Rules: rule(nil)},
			{Name: "disabled", Hosts: []string{"disabled.example.com"}, Rules: rule(durationpb.New(0))},
		},
	}
	tbl, err := xdstable.Build(snapshotOf(t, in), xdstable.Options{RouteConfig: "outbound"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	for host, want := range map[string]time.Duration{"unset.example.com": xdstable.DefaultRouteTimeout, "disabled.example.com": 0} {
		r := tbl.Match(request(host, "/"))
		if r == nil {
			t.Fatalf("no route for %s", host)
		}
		if r.Timeout != want {
			t.Errorf("%s: timeout %v, want %v", host, r.Timeout, want)
		}
	}
}

// Issue 16: a service whose instances all left is dropped by the control
// plane; a proxy that has seen it keeps its name, so a request for it gets
// 503 "no healthy instance" rather than the 404 of an unknown name.
func TestBuildKeepsKnownServicesWithoutInstances(t *testing.T) {
	before := snapshotOf(t, xds.Input{Endpoints: []registry.Endpoint{
		endpoint("orders", "orders-1", 3001, registry.HealthUnknown, nil),
		endpoint("users", "users-1", 3002, registry.HealthUnknown, nil),
	}})
	known := xdstable.ServiceNames(before)
	if !slices.Equal(known, []string{"orders", "users"}) {
		t.Fatalf("ServiceNames = %v, want [orders users]", known)
	}
	after := snapshotOf(t, xds.Input{Endpoints: []registry.Endpoint{
		endpoint("users", "users-1", 3002, registry.HealthUnknown, nil),
	}})
	tbl, err := xdstable.Build(after, xdstable.Options{RouteConfig: "outbound", Known: known})
	if err != nil {
		t.Fatal(err)
	}
	rt := tbl.Match(request("orders", "/api/orders"))
	if rt == nil {
		t.Fatal("no route for orders: it would answer 404 as if nobody knew the name")
	}
	if c := rt.PickCluster(); c == nil || c.Name != "orders" || len(c.Endpoints) != 0 {
		t.Errorf("orders routes to %+v, want its empty cluster (503)", c)
	}
	if got := healthyAddrs(tbl.Cluster("users")); !slices.Equal(got, []string{"127.0.0.1:3002"}) {
		t.Errorf("users = %v: a known service that is still there is unchanged", got)
	}
	if tbl.Match(request("nosuch", "/")) != nil {
		t.Error("a name never seen is routed; want 404")
	}
}

// A rule's balance_factor reaches the sidecar's ring hash and Maglev
// pickers through hash_balance_factor (issue 18).
func TestBuildReadsHashBalanceFactor(t *testing.T) {
	rule := func(s shoalv1.Strategy, bf uint32) []*shoalv1.Rule {
		return []*shoalv1.Rule{{Destinations: []*shoalv1.Destination{{Service: "orders"}}, Strategy: s,
			HashKey: &shoalv1.HashKey{Key: &shoalv1.HashKey_Header{Header: "x-user"}}, BalanceFactor: bf}}
	}
	in := xds.Input{
		Endpoints: []registry.Endpoint{endpoint("orders", "orders-1", 3001, registry.HealthHealthy, nil)},
		Routes: []*shoalv1.Route{
			{Name: "rh", Hosts: []string{"rh"}, Rules: rule(shoalv1.Strategy_STRATEGY_RING_HASH, 125)},
			{Name: "mg", Hosts: []string{"mg"}, Rules: rule(shoalv1.Strategy_STRATEGY_MAGLEV, 150)},
			{Name: "plain", Hosts: []string{"plain"}, Rules: rule(shoalv1.Strategy_STRATEGY_RING_HASH, 0)},
		},
	}
	tbl, err := xdstable.Build(snapshotOf(t, in), xdstable.Options{RouteConfig: "outbound"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if c := tbl.Cluster("orders/ring_hash/balance-125"); c == nil || c.LBConfig.RingHash.BoundedLoadFactor != 1.25 {
		t.Errorf("bounded ring hash cluster = %+v, want factor 1.25", c)
	}
	if c := tbl.Cluster("orders/maglev/balance-150"); c == nil || c.LBConfig.Maglev.BoundedLoadFactor != 1.5 {
		t.Errorf("bounded maglev cluster = %+v, want factor 1.5", c)
	}
	if c := tbl.Cluster("orders/ring_hash"); c == nil || c.LBConfig.RingHash.BoundedLoadFactor != 0 {
		t.Errorf("plain ring hash cluster = %+v, want no bound", c)
	}
	if r := tbl.Match(request("rh", "/")); r == nil || r.PickCluster().Name != "orders/ring_hash/balance-125" {
		t.Errorf("route rh = %+v", r)
	}
}

// --stall-detection=false turns stall detection off on every cluster,
// the local app's included.
func TestBuildNoStallDetection(t *testing.T) {
	in := xds.Input{Endpoints: []registry.Endpoint{endpoint("users", "users-1", 4001, registry.HealthHealthy, nil)}}
	for _, off := range []bool{false, true} {
		tbl, err := xdstable.Build(snapshotOf(t, in), xdstable.Options{RouteConfig: "outbound", NoStallDetection: off,
			LocalApp: &route.Endpoint{Address: "127.0.0.1:3000", Healthy: true}})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"users", xdstable.LocalAppCluster} {
			if c := tbl.Cluster(name); c == nil || c.Stall.Disabled != off {
				t.Errorf("NoStallDetection=%v: cluster %s = %+v", off, name, c)
			}
		}
	}
}

// A service whose instances all declare tcp becomes a TCP cluster in the
// sidecar (the control plane marks it in the cluster's shoal metadata),
// so an --upstream port for it passes bytes through; a service with one
// HTTP instance among TCP ones stays HTTP.
func TestBuildTCPClusters(t *testing.T) {
	tcp := func(e registry.Endpoint) registry.Endpoint { e.Protocol = "tcp"; return e }
	in := xds.Input{Endpoints: []registry.Endpoint{
		tcp(endpoint("redis", "redis-1", 6379, registry.HealthHealthy, nil)),
		tcp(endpoint("redis", "redis-2", 6380, registry.HealthHealthy, nil)),
		tcp(endpoint("mixed", "mixed-1", 7001, registry.HealthHealthy, nil)),
		endpoint("mixed", "mixed-2", 7002, registry.HealthHealthy, nil),
	}}
	tbl, err := xdstable.Build(snapshotOf(t, in), xdstable.Options{RouteConfig: "outbound"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if c := tbl.Cluster("redis"); c == nil || c.Protocol != route.TCP {
		t.Errorf("redis cluster = %+v, want TCP", c)
	}
	if c := tbl.Cluster("mixed"); c == nil || c.Protocol != route.HTTP1 {
		t.Errorf("mixed cluster = %+v, want HTTP/1.1", c)
	}
}
