package routes_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-mesh/shoal/controlplane/routes"
	"github.com/shoal-mesh/shoal/controlplane/routes/routestest"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

func TestValidateRejectsEveryInvalidCase(t *testing.T) {
	for _, tc := range routestest.Invalid("web") {
		t.Run(tc.Name, func(t *testing.T) {
			before := proto.CloneOf(tc.Route)
			err := routes.Validate(tc.Route)
			var fe *routes.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *FieldError", err)
			}
			if fe.Field != tc.Field {
				t.Errorf("Field = %q, want %q (error: %v)", fe.Field, tc.Field, err)
			}
			if !strings.Contains(err.Error(), tc.Field+": ") || !strings.Contains(err.Error(), tc.Contains) {
				t.Errorf("error %q does not name %q / contain %q", err, tc.Field, tc.Contains)
			}
			if !proto.Equal(before, tc.Route) {
				t.Error("Validate modified the route")
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(r *shoalv1.Route)
	}{
		{"the fixture", func(*shoalv1.Route) {}},
		{"a minimal route", func(r *shoalv1.Route) {
			*r = shoalv1.Route{Name: "web", Hosts: []string{"web"}, Rules: []*shoalv1.Rule{{Destinations: []*shoalv1.Destination{{Service: "web"}}}}}
		}},
		{"wildcard, domain and catch-all hosts", func(r *shoalv1.Route) { r.Hosts = []string{"*.example.com", "api.example.com", "*"} }},
		{"a zero weight beside a non-zero one", func(r *shoalv1.Route) { r.Rules[0].Destinations[1].Weight = 0 }},
		{"ip hash without a key", func(r *shoalv1.Route) { r.Rules[0].Strategy = shoalv1.Strategy_STRATEGY_IP_HASH }},
		{"ring hash on a cookie", func(r *shoalv1.Route) {
			r.Rules[0].Strategy = shoalv1.Strategy_STRATEGY_RING_HASH
			r.Rules[0].HashKey = &shoalv1.HashKey{Key: &shoalv1.HashKey_Cookie{Cookie: "session"}}
		}},
		{"maglev with a balance factor", func(r *shoalv1.Route) {
			r.Rules[0].Strategy, r.Rules[0].BalanceFactor = shoalv1.Strategy_STRATEGY_MAGLEV, 125
			r.Rules[0].HashKey = &shoalv1.HashKey{Key: &shoalv1.HashKey_Header{Header: "x-user"}}
		}},
		{"every proxy setting (issue 17)", func(r *shoalv1.Route) {
			r.Rules[0].CircuitBreakers = &shoalv1.CircuitBreakers{MaxConnections: 10, MaxPendingRequests: 5, MaxRequests: 20, MaxRetries: 2, MaxRequestsPerEndpoint: 20}
			r.Rules[0].SlowStart = &shoalv1.SlowStart{Window: durationpb.New(30 * time.Second), Aggression: proto.Float64(2), MinWeightPercent: proto.Float64(0)}
			r.Rules[0].StallDetection = &shoalv1.StallDetection{MinThreshold: durationpb.New(5 * time.Second), MaxThreshold: durationpb.New(time.Minute)}
		}},
		{"slow start with least loaded, defaults", func(r *shoalv1.Route) {
			r.Rules[0].Strategy = shoalv1.Strategy_STRATEGY_LEAST_LOADED
			r.Rules[0].SlowStart = &shoalv1.SlowStart{Window: durationpb.New(time.Minute)}
		}},
		{"stall detection off", func(r *shoalv1.Route) { r.Rules[1].StallDetection = &shoalv1.StallDetection{Disabled: true} }},
		{"ip hash with the smallest balance factor", func(r *shoalv1.Route) {
			r.Rules[0].Strategy, r.Rules[0].BalanceFactor = shoalv1.Strategy_STRATEGY_IP_HASH, 100
		}},
		{"pseudo-header match", func(r *shoalv1.Route) {
			r.Rules[0].Match.Headers = []*shoalv1.HeaderMatch{{Name: ":authority", Invert: true}}
		}},
		{"a version (ignored)", func(r *shoalv1.Route) { r.Version = "not-a-number" }},
		{"gRPC retry conditions", func(r *shoalv1.Route) {
			r.Rules[0].Retry.RetryOn = []string{"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}
			r.Rules[0].Retry.RetriableStatusCodes = nil
		}},
		{"gRPC and HTTP retry conditions together", func(r *shoalv1.Route) {
			r.Rules[0].Retry.RetryOn = append(r.Rules[0].Retry.RetryOn, "unavailable", "reset")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := routestest.Valid("web")
			tc.mutate(r)
			if err := routes.Validate(r); err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
		})
	}
}

func TestCheckConflicts(t *testing.T) {
	first, second, field := routestest.Conflict("web", "web-canary")
	tests := []struct {
		name      string
		candidate *shoalv1.Route
		others    []*shoalv1.Route
		wantField string
	}{
		{"same host and match in another route", second, []*shoalv1.Route{first}, field},
		{"the route replacing itself", first, []*shoalv1.Route{first}, ""},
		{"disjoint hosts", routestest.Valid("api"), []*shoalv1.Route{first}, ""},
		{"method order and prefix / do not matter", func() *shoalv1.Route {
			r := routestest.Valid("other")
			r.Hosts = []string{"web"}
			r.Rules = r.Rules[1:]
			r.Rules[0].Match = &shoalv1.Match{Path: &shoalv1.Match_Prefix{Prefix: "/"}}
			return r
		}(), []*shoalv1.Route{first}, "rules[0].match"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := routes.CheckConflicts(tc.candidate, tc.others)
			var fe *routes.FieldError
			switch {
			case tc.wantField == "" && err != nil:
				t.Fatalf("CheckConflicts() = %v, want nil", err)
			case tc.wantField != "" && (!errors.As(err, &fe) || fe.Field != tc.wantField):
				t.Fatalf("CheckConflicts() = %v, want a FieldError on %s", err, tc.wantField)
			}
		})
	}
}

func TestValidateSet(t *testing.T) {
	first, second, _ := routestest.Conflict("web", "web-canary")
	tests := []struct {
		name    string
		set     []*shoalv1.Route
		wantErr string
	}{
		{"distinct routes", []*shoalv1.Route{routestest.Valid("web"), routestest.Valid("api")}, ""},
		{"same name twice", []*shoalv1.Route{routestest.Valid("web"), routestest.Valid("web")}, `route "web": name: the same name is given twice`},
		{"conflicting routes", []*shoalv1.Route{first, second}, `route "web-canary": rules[1].match: host "web"`},
		{"an invalid route", []*shoalv1.Route{routestest.Invalid("web")[0].Route}, "name: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := routes.ValidateSet(tc.set)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("ValidateSet() = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestCheckTotalSize(t *testing.T) {
	big := func(name string, size int) *shoalv1.Route {
		r := routestest.Valid(name)
		r.Rules[1].Match = &shoalv1.Match{Headers: []*shoalv1.HeaderMatch{{Name: "x-pad", Value: &shoalv1.HeaderMatch_Exact{Exact: strings.Repeat("p", size)}}}}
		return r
	}
	a, b := big("a", 900<<10), big("b", 900<<10)
	if err := routes.CheckTotalSize(b, []*shoalv1.Route{a}); err != nil {
		t.Fatalf("two routes of 0.9 MiB: %v, want nil", err)
	}
	// Updating a route replaces it: its old version does not count.
	if err := routes.CheckTotalSize(big("a", 1000<<10), []*shoalv1.Route{a, b}); err != nil {
		t.Fatalf("updating a within the limit: %v, want nil", err)
	}
	err := routes.CheckTotalSize(big("c", 300<<10), []*shoalv1.Route{a, b})
	var fe *routes.FieldError
	if !errors.As(err, &fe) || fe.Route != "c" || !strings.Contains(err.Error(), "over the 2097152-byte (2 MiB) limit") {
		t.Fatalf("a third route over the total = %v, want a FieldError naming route c and the limit", err)
	}
}
