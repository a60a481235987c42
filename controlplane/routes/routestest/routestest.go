// Package routestest provides route fixtures for tests: a valid route and
// the invalid routes that validation must reject, each with the field path
// its error must name. Tests of the store, the API and the CLI share them so
// that every layer is checked against the same cases.
package routestest

import (
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// Valid returns a valid route named name for host name: a canary split with
// retries on /api and a catch-all rule.
func Valid(name string) *shoalv1.Route {
	return &shoalv1.Route{
		Name:  name,
		Hosts: []string{name},
		Rules: []*shoalv1.Rule{
			{
				Match: &shoalv1.Match{Path: &shoalv1.Match_Prefix{Prefix: "/api"}, Methods: []string{"GET"}},
				Destinations: []*shoalv1.Destination{
					{Service: name, Subset: map[string]string{"version": "v1"}, Weight: 90},
					{Service: name, Subset: map[string]string{"version": "v2"}, Weight: 10},
				},
				Strategy: shoalv1.Strategy_STRATEGY_LEAST_REQUEST,
				Timeout:  durationpb.New(3 * time.Second),
				Retry: &shoalv1.RetryPolicy{
					Attempts: 2, PerTryTimeout: durationpb.New(time.Second),
					RetryOn: []string{"connect-failure", "retriable-status-codes"}, RetriableStatusCodes: []uint32{503},
				},
			},
			{Destinations: []*shoalv1.Destination{{Service: name}}},
		},
	}
}

// Case is an invalid route and the field path its error names ("" for
// errors about the whole route; Contains then holds a phrase of the error).
type Case struct {
	Name     string
	Route    *shoalv1.Route
	Field    string
	Contains string
}

// Invalid returns one case per validation rule, each a change of
// Valid(name).
func Invalid(name string) []Case {
	mk := func(caseName, field string, f func(r *shoalv1.Route)) Case {
		r := Valid(name)
		f(r)
		return Case{Name: caseName, Route: r, Field: field}
	}
	dest := func(r *shoalv1.Route) *shoalv1.Destination { return r.Rules[0].Destinations[0] }
	cases := []Case{
		mk("bad name", "name", func(r *shoalv1.Route) { r.Name = "Web_1" }),
		mk("name too long", "name", func(r *shoalv1.Route) { r.Name = strings.Repeat("a", 64) }),
		mk("empty hosts", "hosts", func(r *shoalv1.Route) { r.Hosts = nil }),
		mk("uppercase host", "hosts[0]", func(r *shoalv1.Route) { r.Hosts = []string{"Web"} }),
		mk("host with port", "hosts[1]", func(r *shoalv1.Route) { r.Hosts = append(r.Hosts, "web:8080") }),
		mk("wildcard inside host", "hosts[0]", func(r *shoalv1.Route) { r.Hosts = []string{"a.*.example.com"} }),
		mk("duplicate host", "hosts[1]", func(r *shoalv1.Route) { r.Hosts = append(r.Hosts, r.Hosts[0]) }),
		mk("no rules", "rules", func(r *shoalv1.Route) { r.Rules = nil }),
		mk("prefix without slash", "rules[0].match.prefix", func(r *shoalv1.Route) { r.Rules[0].Match.Path = &shoalv1.Match_Prefix{Prefix: "api"} }),
		mk("invalid regex", "rules[0].match.regex", func(r *shoalv1.Route) { r.Rules[0].Match.Path = &shoalv1.Match_Regex{Regex: "/(a"} }),
		// Issue 16: 20 bytes, 3,007 instructions; it made every request
		// with a 4 KiB path cost ~150 ms of proxy CPU.
		mk("regex program too large", "rules[0].match.regex", func(r *shoalv1.Route) {
			r.Rules[0].Match.Path = &shoalv1.Match_Regex{Regex: "^/[a-z]*(a|b){1000}$"}
		}),
		mk("header regex program too large", "rules[0].match.headers[0].regex", func(r *shoalv1.Route) {
			r.Rules[0].Match.Headers = []*shoalv1.HeaderMatch{{Name: "x-user", Value: &shoalv1.HeaderMatch_Regex{Regex: "[a-z]{200}"}}}
		}),
		mk("invalid method", "rules[0].match.methods[1]", func(r *shoalv1.Route) { r.Rules[0].Match.Methods = append(r.Rules[0].Match.Methods, "GE T") }),
		mk("invalid header name", "rules[0].match.headers[0].name", func(r *shoalv1.Route) {
			r.Rules[0].Match.Headers = []*shoalv1.HeaderMatch{{Name: "x user"}}
		}),
		mk("invalid header regex", "rules[0].match.headers[0].regex", func(r *shoalv1.Route) {
			r.Rules[0].Match.Headers = []*shoalv1.HeaderMatch{{Name: "x-user", Value: &shoalv1.HeaderMatch_Regex{Regex: "[z-a]"}}}
		}),
		mk("duplicate match", "rules[1].match", func(r *shoalv1.Route) { r.Rules[1].Match = proto.CloneOf(r.Rules[0].Match) }),
		mk("no destinations", "rules[1].destinations", func(r *shoalv1.Route) { r.Rules[1].Destinations = nil }),
		mk("bad destination service", "rules[0].destinations[0].service", func(r *shoalv1.Route) { dest(r).Service = "Orders" }),
		mk("negative weight", "rules[1].destinations[0].weight", func(r *shoalv1.Route) { r.Rules[1].Destinations[0].Weight = -1 }),
		mk("weight too large", "rules[0].destinations[1].weight", func(r *shoalv1.Route) { r.Rules[0].Destinations[1].Weight = 10001 }),
		mk("all weights zero", "rules[0].destinations", func(r *shoalv1.Route) {
			r.Rules[0].Destinations[0].Weight, r.Rules[0].Destinations[1].Weight = 0, 0
		}),
		mk("bad subset key", `rules[0].destinations[0].subset["-version"]`, func(r *shoalv1.Route) { dest(r).Subset = map[string]string{"-version": "v1"} }),
		mk("duplicate destination", "rules[0].destinations[1]", func(r *shoalv1.Route) { r.Rules[0].Destinations[1].Subset = dest(r).Subset }),
		mk("unknown strategy", "rules[0].strategy", func(r *shoalv1.Route) { r.Rules[0].Strategy = 99 }),
		mk("ring hash without hash key", "rules[0].hash_key", func(r *shoalv1.Route) { r.Rules[0].Strategy = shoalv1.Strategy_STRATEGY_RING_HASH }),
		mk("maglev without hash key", "rules[0].hash_key", func(r *shoalv1.Route) { r.Rules[0].Strategy = shoalv1.Strategy_STRATEGY_MAGLEV }),
		mk("hash key with least request", "rules[0].hash_key", func(r *shoalv1.Route) {
			r.Rules[0].HashKey = &shoalv1.HashKey{Key: &shoalv1.HashKey_Header{Header: "x-user"}}
		}),
		mk("empty hash key", "rules[0].hash_key", func(r *shoalv1.Route) {
			r.Rules[0].Strategy, r.Rules[0].HashKey = shoalv1.Strategy_STRATEGY_RING_HASH, &shoalv1.HashKey{}
		}),
		mk("invalid hash header", "rules[0].hash_key.header", func(r *shoalv1.Route) {
			r.Rules[0].Strategy = shoalv1.Strategy_STRATEGY_RING_HASH
			r.Rules[0].HashKey = &shoalv1.HashKey{Key: &shoalv1.HashKey_Header{Header: "x user"}}
		}),
		mk("invalid hash cookie", "rules[0].hash_key.cookie", func(r *shoalv1.Route) {
			r.Rules[0].Strategy = shoalv1.Strategy_STRATEGY_MAGLEV
			r.Rules[0].HashKey = &shoalv1.HashKey{Key: &shoalv1.HashKey_Cookie{Cookie: "a=b"}}
		}),
		mk("balance factor with least request", "rules[0].balance_factor", func(r *shoalv1.Route) { r.Rules[0].BalanceFactor = 125 }),
		mk("balance factor below 100", "rules[0].balance_factor", func(r *shoalv1.Route) {
			r.Rules[0].Strategy, r.Rules[0].BalanceFactor = shoalv1.Strategy_STRATEGY_IP_HASH, 99
		}),
		mk("balance factor above 10000", "rules[0].balance_factor", func(r *shoalv1.Route) {
			r.Rules[0].Strategy, r.Rules[0].BalanceFactor = shoalv1.Strategy_STRATEGY_IP_HASH, 10001
		}),
		mk("negative timeout", "rules[0].timeout", func(r *shoalv1.Route) { r.Rules[0].Timeout = durationpb.New(-time.Second) }),
		mk("malformed timeout", "rules[0].timeout", func(r *shoalv1.Route) { r.Rules[0].Timeout = &durationpb.Duration{Seconds: 1, Nanos: -5} }),
		mk("timeout over a day", "rules[0].timeout", func(r *shoalv1.Route) { r.Rules[0].Timeout = durationpb.New(25 * time.Hour) }),
		mk("retry attempts over 10", "rules[0].retry.attempts", func(r *shoalv1.Route) { r.Rules[0].Retry.Attempts = 11 }),
		mk("negative retry attempts", "rules[0].retry.attempts", func(r *shoalv1.Route) { r.Rules[0].Retry.Attempts = -1 }),
		mk("negative per-try timeout", "rules[0].retry.per_try_timeout", func(r *shoalv1.Route) {
			r.Rules[0].Retry.PerTryTimeout = durationpb.New(-time.Millisecond)
		}),
		mk("per-try timeout over timeout", "rules[0].retry.per_try_timeout", func(r *shoalv1.Route) {
			r.Rules[0].Retry.PerTryTimeout = durationpb.New(5 * time.Second)
		}),
		mk("unknown retry_on", "rules[0].retry.retry_on[2]", func(r *shoalv1.Route) { r.Rules[0].Retry.RetryOn = append(r.Rules[0].Retry.RetryOn, "sometimes") }),
		mk("gRPC code name as retry_on", "rules[0].retry.retry_on[2]", func(r *shoalv1.Route) {
			r.Rules[0].Retry.RetryOn = append(r.Rules[0].Retry.RetryOn, "UNAVAILABLE") // Envoy's name is "unavailable"
		}),
		mk("status code out of range", "rules[0].retry.retriable_status_codes[1]", func(r *shoalv1.Route) {
			r.Rules[0].Retry.RetriableStatusCodes = append(r.Rules[0].Retry.RetriableStatusCodes, 600)
		}),
		mk("status codes without retriable-status-codes", "rules[0].retry.retriable_status_codes", func(r *shoalv1.Route) {
			r.Rules[0].Retry.RetryOn = []string{"5xx"}
		}),
		// Issue 17: per-rule circuit breakers, slow start, stall detection.
		mk("circuit breaker limit over a million", "rules[0].circuit_breakers.max_connections", func(r *shoalv1.Route) {
			r.Rules[0].CircuitBreakers = &shoalv1.CircuitBreakers{MaxConnections: 1_000_001}
		}),
		mk("per-endpoint limit over max_requests", "rules[0].circuit_breakers.max_requests_per_endpoint", func(r *shoalv1.Route) {
			r.Rules[0].CircuitBreakers = &shoalv1.CircuitBreakers{MaxRequests: 10, MaxRequestsPerEndpoint: 11}
		}),
		mk("slow start without a window", "rules[0].slow_start.window", func(r *shoalv1.Route) {
			r.Rules[0].SlowStart = &shoalv1.SlowStart{}
		}),
		mk("slow start window 0s", "rules[0].slow_start.window", func(r *shoalv1.Route) {
			r.Rules[0].SlowStart = &shoalv1.SlowStart{Window: durationpb.New(0)}
		}),
		mk("slow start aggression 0", "rules[0].slow_start.aggression", func(r *shoalv1.Route) {
			r.Rules[0].SlowStart = &shoalv1.SlowStart{Window: durationpb.New(time.Minute), Aggression: proto.Float64(0)}
		}),
		mk("slow start min weight over 100", "rules[0].slow_start.min_weight_percent", func(r *shoalv1.Route) {
			r.Rules[0].SlowStart = &shoalv1.SlowStart{Window: durationpb.New(time.Minute), MinWeightPercent: proto.Float64(101)}
		}),
		mk("slow start with ring hash", "rules[0].slow_start", func(r *shoalv1.Route) {
			r.Rules[0].Strategy = shoalv1.Strategy_STRATEGY_IP_HASH
			r.Rules[0].SlowStart = &shoalv1.SlowStart{Window: durationpb.New(time.Minute)}
		}),
		mk("stall detection off with a threshold", "rules[0].stall_detection", func(r *shoalv1.Route) {
			r.Rules[0].StallDetection = &shoalv1.StallDetection{Disabled: true, MaxThreshold: durationpb.New(time.Minute)}
		}),
		mk("stall threshold 0s", "rules[0].stall_detection.min_threshold", func(r *shoalv1.Route) {
			r.Rules[0].StallDetection = &shoalv1.StallDetection{MinThreshold: durationpb.New(0)}
		}),
		mk("stall max below min", "rules[0].stall_detection.max_threshold", func(r *shoalv1.Route) {
			r.Rules[0].StallDetection = &shoalv1.StallDetection{MinThreshold: durationpb.New(5 * time.Second), MaxThreshold: durationpb.New(time.Second)}
		}),
	}
	big := Valid(name)
	big.Rules[0].Match.Headers = []*shoalv1.HeaderMatch{{Name: "x-big", Value: &shoalv1.HeaderMatch_Exact{Exact: strings.Repeat("x", 1<<20)}}}
	return append(cases, Case{Name: "message over 1 MiB", Route: big, Contains: "1 MiB"})
}

// Conflict returns a valid route named existing and a route named
// candidate that is valid alone but claims the same host and match as
// existing's rules[0] in its own rules[1]; field is the path the conflict
// error names.
func Conflict(existing, candidate string) (first, second *shoalv1.Route, field string) {
	first = Valid(existing)
	second = Valid(candidate)
	second.Hosts = append(second.Hosts, existing)
	second.Rules[0].Match.Path = &shoalv1.Match_Prefix{Prefix: "/other"}
	second.Rules[1].Match = proto.CloneOf(first.Rules[0].Match)
	return first, second, "rules[1].match"
}
