package xds

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current translation")

var allProfiles = []Capabilities{CapabilitiesEnvoy, CapabilitiesGRPCGo, CapabilitiesMinimal}

// goldenCases cover every strategy, split, retry and health case. Each is
// translated for every capability profile into
// testdata/<name>.<profile>.golden.
var goldenCases = []struct {
	name string
	in   Input
}{
	{name: "empty", in: Input{}},
	{name: "health", in: Input{Endpoints: []registry.Endpoint{
		endpoint("orders", "unknown", "10.0.0.1", 3001, registry.HealthUnknown),
		endpoint("orders", "healthy", "10.0.0.2", 3001, registry.HealthHealthy, weight(5)),
		endpoint("orders", "unhealthy", "10.0.0.3", 3001, registry.HealthUnhealthy),
		endpoint("orders", "suspect", "10.0.0.4", 3001, registry.HealthSuspect, zone("b")),
		endpoint("orders", "draining", "10.0.0.5", 3001, registry.HealthDraining, zone("b")),
		endpoint("orders", "dead", "10.0.0.6", 3001, registry.HealthDead, zone("c")),
		endpoint("orders", "hostname", "orders.internal", 3001, registry.HealthHealthy),
		endpoint("orders", "dup-of-healthy", "10.0.0.2", 3001, registry.HealthDead),
		endpoint("grpcsvc", "g-1", "10.0.9.1", 50051, registry.HealthHealthy, grpcProto()),
	}}},
	{name: "strategies", in: Input{Endpoints: ordersFleet(), Routes: []*shoalv1.Route{
		route("rr", []string{"rr.example.com"}, rule(shoalv1.Strategy_STRATEGY_ROUND_ROBIN, to("orders"))),
		route("lr", []string{"lr.example.com"}, rule(shoalv1.Strategy_STRATEGY_LEAST_REQUEST, to("orders"))),
		route("iphash", []string{"ip.example.com"}, rule(shoalv1.Strategy_STRATEGY_IP_HASH, to("orders"))),
		route("ring", []string{"orders"}, withHash(rule(shoalv1.Strategy_STRATEGY_RING_HASH, to("orders")), headerKey("X-User"))),
		route("maglev", []string{"maglev.example.com"}, withHash(rule(shoalv1.Strategy_STRATEGY_MAGLEV, to("orders")), cookieKey("session"))),
		route("random", []string{"random.example.com"}, rule(shoalv1.Strategy_STRATEGY_RANDOM, to("users"))),
		route("ll", []string{"ll.example.com"}, rule(shoalv1.Strategy_STRATEGY_LEAST_LOADED, to("orders"))),
	}}},
	{name: "split", in: Input{Endpoints: ordersFleet(), Routes: []*shoalv1.Route{
		route("canary", []string{"orders", "*.orders.example.com"},
			&shoalv1.Rule{
				Match: &shoalv1.Match{
					Path:    &shoalv1.Match_Prefix{Prefix: "/api/"},
					Methods: []string{"GET", "POST"},
					Headers: []*shoalv1.HeaderMatch{
						{Name: "X-Canary", Value: &shoalv1.HeaderMatch_Exact{Exact: "1"}},
						{Name: "x-debug", Invert: true},
						{Name: "x-tenant", Value: &shoalv1.HeaderMatch_Regex{Regex: "^t-[0-9]+$"}},
					},
				},
				Destinations: []*shoalv1.Destination{toW("orders", 90, "version", "v1"), toW("orders", 10, "version", "v2")},
				Strategy:     shoalv1.Strategy_STRATEGY_LEAST_REQUEST,
				Timeout:      dur(3 * time.Second),
			},
			&shoalv1.Rule{
				Match:        &shoalv1.Match{Path: &shoalv1.Match_Exact{Exact: "/healthz"}},
				Destinations: []*shoalv1.Destination{toW("orders", 1), toW("billing", 1)},
			},
			&shoalv1.Rule{
				Match:        &shoalv1.Match{Path: &shoalv1.Match_Regex{Regex: "/v[0-9]+/.*"}},
				Destinations: []*shoalv1.Destination{to("orders")},
			},
		),
	}}},
	{name: "retry", in: Input{Endpoints: ordersFleet(), Routes: []*shoalv1.Route{
		route("retry-http", []string{"orders"}, &shoalv1.Rule{
			Destinations: []*shoalv1.Destination{to("orders")},
			Retry: &shoalv1.RetryPolicy{
				Attempts: 3, PerTryTimeout: dur(500 * time.Millisecond),
				RetryOn:              []string{"5xx", "retriable-status-codes", "unavailable"},
				RetriableStatusCodes: []uint32{503, 429},
			},
		}),
		route("retry-grpc-only", []string{"users"}, &shoalv1.Rule{
			Destinations: []*shoalv1.Destination{to("users")},
			Retry:        &shoalv1.RetryPolicy{Attempts: 2, RetryOn: []string{"unavailable", "cancelled"}},
		}),
		route("retry-http-only", []string{"http-only.example.com"}, &shoalv1.Rule{
			Destinations: []*shoalv1.Destination{to("users")},
			Retry:        &shoalv1.RetryPolicy{Attempts: 2, RetryOn: []string{"connect-failure"}},
		}),
	}}},
	{name: "rejected", in: Input{Endpoints: ordersFleet(), Routes: []*shoalv1.Route{
		route("a-first", []string{"orders"}, rule(shoalv1.Strategy_STRATEGY_ROUND_ROBIN, to("orders"))),
		route("b-same-host", []string{"orders"}, rule(shoalv1.Strategy_STRATEGY_LEAST_REQUEST, to("orders"))),
		route("ring-without-key", []string{"a.example.com"}, rule(shoalv1.Strategy_STRATEGY_RING_HASH, to("orders"))),
		route("bad-regex", []string{"b.example.com"}, &shoalv1.Rule{
			Match: &shoalv1.Match{Path: &shoalv1.Match_Regex{Regex: "(("}}, Destinations: []*shoalv1.Destination{to("orders")},
		}),
		route("bad-weight", []string{"c.example.com"}, rule(0, toW("orders", 0), toW("users", 0))),
		route("Bad_Name", []string{"d.example.com"}, rule(0, to("orders"))),
		route("no-rules", []string{"e.example.com"}),
	}}},
	{name: "shared-host", in: sharedHostInput()},
	// Issue 13: orders is half migrated to mTLS (one sidecar with an
	// identity, one plain Node.js app); users is plain; greeter (gRPC) is
	// mTLS only, so proxyless clients get gRPC's security config (A29) for
	// it and for nothing else.
	{name: "mtls", in: Input{TrustDomain: "example.org", Endpoints: []registry.Endpoint{
		endpoint("orders", "orders-1", "10.0.0.1", 15006, registry.HealthHealthy, mtls()),
		endpoint("orders", "orders-2", "10.0.0.2", 3001, registry.HealthHealthy),
		endpoint("users", "users-1", "10.0.1.1", 3001, registry.HealthHealthy),
		endpoint("greeter", "greeter-1", "10.0.2.1", 15006, registry.HealthHealthy, mtls(), grpcProto()),
		endpoint("greeter", "greeter-2", "10.0.2.2", 15006, registry.HealthHealthy, mtls(), grpcProto()),
	}, Routes: []*shoalv1.Route{
		route("lr", []string{"orders"}, rule(shoalv1.Strategy_STRATEGY_LEAST_REQUEST, to("orders"))),
	}}},
	{name: "policy", in: policyInput()},
	// Issue 17: per-rule circuit breakers, slow start and stall detection
	// under every strategy that ramps up; two rules with equal settings
	// share a cluster, a rule without settings keeps the default one.
	{name: "tuned", in: Input{Endpoints: ordersFleet(), Routes: []*shoalv1.Route{
		route("tuned", []string{"orders"},
			tuned(&shoalv1.Rule{Match: &shoalv1.Match{Path: &shoalv1.Match_Prefix{Prefix: "/rr"}}, Destinations: []*shoalv1.Destination{to("orders")}}),
			tuned(&shoalv1.Rule{Match: &shoalv1.Match{Path: &shoalv1.Match_Prefix{Prefix: "/rr-again"}}, Destinations: []*shoalv1.Destination{to("orders")}}),
			tuned(rule(shoalv1.Strategy_STRATEGY_LEAST_REQUEST, to("orders")), func(r *shoalv1.Rule) {
				r.Match = &shoalv1.Match{Path: &shoalv1.Match_Prefix{Prefix: "/lr"}}
				r.SlowStart = &shoalv1.SlowStart{Window: dur(time.Minute)}
			}),
			tuned(rule(shoalv1.Strategy_STRATEGY_LEAST_LOADED, to("orders")), func(r *shoalv1.Rule) {
				r.Match = &shoalv1.Match{Path: &shoalv1.Match_Prefix{Prefix: "/ll"}}
				r.StallDetection = &shoalv1.StallDetection{MinThreshold: dur(2 * time.Second), MaxThreshold: dur(30 * time.Second)}
			}),
			&shoalv1.Rule{
				Match:          &shoalv1.Match{Path: &shoalv1.Match_Prefix{Prefix: "/poll"}},
				Destinations:   []*shoalv1.Destination{to("users")},
				StallDetection: &shoalv1.StallDetection{Disabled: true},
			},
			rule(shoalv1.Strategy_STRATEGY_ROUND_ROBIN, to("orders")),
		),
	}}},
}

// tuned gives r every proxy setting (issue 17), then applies the changes.
func tuned(r *shoalv1.Rule, changes ...func(*shoalv1.Rule)) *shoalv1.Rule {
	r.CircuitBreakers = &shoalv1.CircuitBreakers{MaxConnections: 50, MaxPendingRequests: 20, MaxRequests: 100, MaxRetries: 5, MaxRequestsPerEndpoint: 10}
	r.SlowStart = &shoalv1.SlowStart{Window: dur(30 * time.Second), Aggression: proto.Float64(2), MinWeightPercent: proto.Float64(5)}
	r.StallDetection = &shoalv1.StallDetection{Disabled: true}
	for _, c := range changes {
		c(r)
	}
	return r
}

func TestTranslateGolden(t *testing.T) {
	for _, tc := range goldenCases {
		for _, caps := range allProfiles {
			t.Run(tc.name+"/"+caps.Profile, func(t *testing.T) {
				res, statuses := Translate(tc.in, caps)
				if err := res.Check(); err != nil {
					t.Fatalf("Check() = %v", err)
				}
				got := dumpResources(t, res, statuses)
				path := filepath.Join("testdata", tc.name+"."+caps.Profile+".golden")
				if *update {
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if diff := cmp.Diff(string(want), string(got)); diff != "" {
					t.Errorf("translation differs from %s (-want +got):\n%s", path, diff)
				}
			})
		}
	}
}

// dumpResources renders a translation as indented protojson (each
// resource wrapped in Any, so the golden file names its type), with the
// route statuses last.
func dumpResources(t *testing.T, res *Resources, statuses []*shoalv1.RouteStatus) []byte {
	t.Helper()
	var buf bytes.Buffer
	opts := protojson.MarshalOptions{Multiline: true, Indent: "  "}
	groups := []struct {
		name string
		msgs []proto.Message
	}{
		{"listeners", messages(res.Listeners)}, {"routes", messages(res.Routes)},
		{"clusters", messages(res.Clusters)}, {"endpoints", messages(res.Endpoints)},
		{"statuses", messages(statuses)},
	}
	for _, g := range groups {
		buf.WriteString("# " + g.name + "\n")
		for _, m := range g.msgs {
			a, err := anypb.New(m)
			if err != nil {
				t.Fatal(err)
			}
			b, err := opts.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			buf.Write(b)
			buf.WriteString("\n")
		}
	}
	// protojson randomises some whitespace to discourage byte comparison;
	// normalise it so that golden files are stable.
	return []byte(strings.ReplaceAll(buf.String(), ":  ", ": "))
}

func messages[M proto.Message](in []M) []proto.Message {
	out := make([]proto.Message, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}

// A rule's timeout reaches Envoy's RouteAction.timeout: none given is the
// 15 s default, an explicit 0s disables it (Envoy's meaning) for long
// uploads, downloads and event streams.
func TestTranslateRouteTimeout(t *testing.T) {
	noTimeout := rule(shoalv1.Strategy_STRATEGY_ROUND_ROBIN, to("orders"))
	disabled := rule(shoalv1.Strategy_STRATEGY_ROUND_ROBIN, to("orders"))
	disabled.Timeout = dur(0)
	set := rule(shoalv1.Strategy_STRATEGY_ROUND_ROBIN, to("orders"))
	set.Timeout = dur(3 * time.Second)
	res, _ := Translate(Input{Endpoints: ordersFleet(), Routes: []*shoalv1.Route{
		route("default", []string{"default.example.com"}, noTimeout),
		route("disabled", []string{"disabled.example.com"}, disabled),
		route("set", []string{"set.example.com"}, set),
	}}, CapabilitiesEnvoy)
	want := map[string]time.Duration{"default.example.com": defaultTimeout, "disabled.example.com": 0, "set.example.com": 3 * time.Second}
	got := map[string]time.Duration{}
	for _, r := range res.Routes {
		rc, ok := r.(*routev3.RouteConfiguration)
		if !ok {
			t.Fatalf("route resource %T", r)
		}
		for _, vh := range rc.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				a := r.GetRoute()
				if a.GetTimeout() == nil {
					t.Fatalf("route %s has no timeout", r.GetName())
				}
				if d := vh.GetDomains()[0]; strings.HasSuffix(d, ".example.com") {
					got[d] = a.GetTimeout().AsDuration()
				}
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("route timeouts (-want +got):\n%s", diff)
	}
}
