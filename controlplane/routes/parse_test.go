package routes_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-mesh/shoal/controlplane/routes"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

func simple(name string, s shoalv1.Strategy) *shoalv1.Route {
	return &shoalv1.Route{Name: name, Hosts: []string{name}, Rules: []*shoalv1.Rule{
		{Destinations: []*shoalv1.Destination{{Service: name}}, Strategy: s},
	}}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []*shoalv1.Route
	}{
		{
			name: "one YAML route with friendly strategy",
			in:   "name: web\nhosts: [web]\nrules:\n- destinations: [{service: web}]\n  strategy: least_connections\n",
			want: []*shoalv1.Route{simple("web", shoalv1.Strategy_STRATEGY_LEAST_REQUEST)},
		},
		{
			name: "a YAML stream with comments and empty documents",
			in: "# routes\n---\nname: web\nhosts: [web]\nrules: [{destinations: [{service: web}], strategy: ROUND_ROBIN}]\n---\n" +
				"---\nname: api\nhosts: [api]\nrules: [{destinations: [{service: api}], strategy: ip-hash}]\n...\n",
			want: []*shoalv1.Route{simple("web", shoalv1.Strategy_STRATEGY_ROUND_ROBIN), simple("api", shoalv1.Strategy_STRATEGY_IP_HASH)},
		},
		{
			name: "a JSON list with canonical names",
			in:   `[{"name":"web","hosts":["web"],"rules":[{"destinations":[{"service":"web"}],"strategy":"STRATEGY_MAGLEV"}]}]`,
			want: []*shoalv1.Route{simple("web", shoalv1.Strategy_STRATEGY_MAGLEV)},
		},
		{
			name: "a JSON routes object with a numeric enum",
			in:   `{"routes":[{"name":"web","hosts":["web"],"rules":[{"destinations":[{"service":"web"}],"strategy":2}]}]}`,
			want: []*shoalv1.Route{simple("web", shoalv1.Strategy_STRATEGY_LEAST_REQUEST)},
		},
		{
			name: "YAML routes list, camelCase fields and Go durations",
			in: "routes:\n- name: web\n  hosts: [web]\n  rules:\n  - destinations: [{service: web}]\n    timeout: 1m30s\n" +
				"    retry: {attempts: 2, perTryTimeout: 500ms, retry_on: [5xx]}\n",
			want: []*shoalv1.Route{{Name: "web", Hosts: []string{"web"}, Rules: []*shoalv1.Rule{{
				Destinations: []*shoalv1.Destination{{Service: "web"}},
				Timeout:      durationpb.New(90 * time.Second),
				Retry:        &shoalv1.RetryPolicy{Attempts: 2, PerTryTimeout: durationpb.New(500 * time.Millisecond), RetryOn: []string{"5xx"}},
			}}}},
		},
		{
			name: "per-rule proxy settings, stall_detection: off (issue 17)",
			in: "name: web\nhosts: [web]\nrules:\n- match: {prefix: /poll}\n  destinations: [{service: web}]\n  stall_detection: off\n" +
				"- destinations: [{service: web}]\n  circuit_breakers: {max_requests: 100, max_requests_per_endpoint: 1}\n" +
				"  slow_start: {window: 30s, aggression: 2, min_weight_percent: 5}\n  stall_detection: {max_threshold: 10s}\n",
			want: []*shoalv1.Route{{Name: "web", Hosts: []string{"web"}, Rules: []*shoalv1.Rule{
				{
					Match:          &shoalv1.Match{Path: &shoalv1.Match_Prefix{Prefix: "/poll"}},
					Destinations:   []*shoalv1.Destination{{Service: "web"}},
					StallDetection: &shoalv1.StallDetection{Disabled: true},
				},
				{
					Destinations:    []*shoalv1.Destination{{Service: "web"}},
					CircuitBreakers: &shoalv1.CircuitBreakers{MaxRequests: 100, MaxRequestsPerEndpoint: 1},
					SlowStart:       &shoalv1.SlowStart{Window: durationpb.New(30 * time.Second), Aggression: proto.Float64(2), MinWeightPercent: proto.Float64(5)},
					StallDetection:  &shoalv1.StallDetection{MaxThreshold: durationpb.New(10 * time.Second)},
				},
			}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := routes.Parse([]byte(tc.in))
			if err != nil {
				t.Fatalf("Parse() = %v", err)
			}
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("Parse() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	const head = "name: web\nhosts: [web]\n"
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"unknown top-level field", head + "rulez: []\n", `route "web" (#1 in the input): rulez: unknown field`},
		{"unknown nested field", head + "rules:\n- destinations: [{service: web, weigth: 3}]\n", "rules[0].destinations[0].weigth: unknown field"},
		{"unknown field in the second document", "name: a\nhosts: [a]\n---\nname: b\nfoo: 1\n", `route "b" (#2 in the input): foo: unknown field`},
		{"unknown strategy", head + "rules: [{strategy: fastest}]\n", `rules[0].strategy: unknown strategy "fastest"`},
		{"wrong type", head + "rules: [{destinations: [{service: web, weight: heavy}]}]\n", "rules[0].destinations[0].weight: want a number"},
		{"not a list", head + "hosts: web\n", "hosts: want a list"},
		{"bad duration", head + "rules: [{timeout: soon}]\n", `rules[0].timeout: "soon" is not a duration`},
		{"two path matches", head + "rules: [{match: {prefix: /a, exact: /b}}]\n", "is set too; set only one of them"},
		{"invalid YAML", "name: [web\n", "invalid YAML"},
		{"empty file", "# nothing\n", "no routes found"},
		{"a JSON stream with an unknown field in the second value", `{"name":"web"} {"name":"api","x":1}`, `route "api" (#2 in the input): x: unknown field`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := routes.Parse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Parse() = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseStrategy(t *testing.T) {
	tests := []struct {
		in   string
		want shoalv1.Strategy
	}{
		{"ROUND_ROBIN", shoalv1.Strategy_STRATEGY_ROUND_ROBIN},
		{"round_robin", shoalv1.Strategy_STRATEGY_ROUND_ROBIN},
		{"STRATEGY_ROUND_ROBIN", shoalv1.Strategy_STRATEGY_ROUND_ROBIN},
		{"least_request", shoalv1.Strategy_STRATEGY_LEAST_REQUEST},
		{"least_connections", shoalv1.Strategy_STRATEGY_LEAST_REQUEST},
		{"Least-Conn", shoalv1.Strategy_STRATEGY_LEAST_REQUEST},
		{"ip_hash", shoalv1.Strategy_STRATEGY_IP_HASH},
		{"consistent_hash", shoalv1.Strategy_STRATEGY_RING_HASH},
		{"maglev", shoalv1.Strategy_STRATEGY_MAGLEV},
		{"random", shoalv1.Strategy_STRATEGY_RANDOM},
		{"least_loaded", shoalv1.Strategy_STRATEGY_LEAST_LOADED},
		{"Least-Loaded", shoalv1.Strategy_STRATEGY_LEAST_LOADED},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := routes.ParseStrategy(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("ParseStrategy(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
	if _, err := routes.ParseStrategy("fastest"); err == nil {
		t.Error(`ParseStrategy("fastest") succeeded`)
	}
}

// FuzzParse feeds arbitrary route files to Parse: it must not panic, and
// whatever it returns must be either an error or routes that validation can
// judge without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte("name: web\nhosts: [web]\nrules: [{destinations: [{service: web}], strategy: ip_hash}]\n"))
	f.Add([]byte(`[{"name":"web","hosts":["web"],"rules":[{"timeout":"1s","retry":{"attempts":3}}]}]`))
	f.Add([]byte("---\n--- {name: a}\n...\nroutes: [{name: b, rules: [{match: {headers: [{name: x, regex: a+}]}}]}]\n"))
	f.Add([]byte(`{"routes":[{"rules":[{"hashKey":{"sourceIp":true},"strategy":"RING_HASH"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := routes.Parse(data)
		if err != nil {
			var fe *routes.FieldError
			if errors.As(err, &fe) && fe.Doc < 0 {
				t.Fatalf("negative Doc in %v", err)
			}
			return
		}
		if len(rs) == 0 {
			t.Fatal("Parse returned no routes and no error")
		}
		_ = routes.ValidateSet(rs)
	})
}

func TestParseReadsBalanceFactor(t *testing.T) {
	rs, err := routes.Parse([]byte("name: chat\nhosts: [chat]\nrules:\n  - destinations:\n      - service: chat\n    strategy: ip_hash\n    balance_factor: 125\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := rs[0].GetRules()[0].GetBalanceFactor(); got != 125 {
		t.Errorf("balance_factor = %d, want 125", got)
	}
	if err := routes.Validate(rs[0]); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}
