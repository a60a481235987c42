package route

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Route is one entry of a virtual host: a match and what to do with the
// requests it matches.
type Route struct {
	// Name is informational (logs, config dumps).
	Name string
	// Match selects requests; the zero value matches everything.
	Match Match
	// Clusters is the traffic split: one entry routes everything to one
	// cluster; several split by Weight (a weight of zero gets no traffic).
	Clusters []WeightedCluster
	// Timeout bounds the upstream exchange, retries included, from the end
	// of the request to the response headers, as Envoy's route timeout; on
	// expiry the client gets 504. The HTTP/1.1 path starts it once the
	// request body is received and a response body is not bounded by it
	// (the proxy's StreamIdleTimeout guards both); on net/http transports
	// (h2c, gRPC) it still runs from the start of the request to the end
	// of the response. Zero means no timeout (Envoy's "0s"; the xDS glue
	// fills Envoy's 15 s default when the route leaves it unset).
	Timeout time.Duration
	// Retry is the retry policy; nil means connect failures only.
	Retry *RetryPolicy
	// Hash lists hash policies for consistent-hashing clusters, combined as
	// Envoy does. Empty means no hash key.
	Hash []HashPolicy

	clusters   []*Cluster // parallel to Clusters; nil for unknown names
	cumWeights []uint64
}

// WeightedCluster is one leg of a traffic split.
type WeightedCluster struct {
	// Name is the cluster name.
	Name string
	// Weight is the relative share. With one entry it is ignored.
	Weight uint32
}

// PickCluster returns the cluster for one request according to the split,
// or nil when the chosen cluster is not in the table (the caller answers
// 503). It does not allocate and is safe for concurrent use.
func (r *Route) PickCluster() *Cluster {
	switch len(r.clusters) {
	case 0:
		return nil
	case 1:
		return r.clusters[0]
	}
	total := r.cumWeights[len(r.cumWeights)-1]
	if total == 0 {
		return nil
	}
	x := randUint64() % total
	for i, w := range r.cumWeights {
		if x < w {
			return r.clusters[i]
		}
	}
	return r.clusters[len(r.clusters)-1]
}

// randUint64 drives traffic splits. Replaced in tests.
var randUint64 = rand.Uint64

// RetryOn is a set of retry conditions (Envoy x-envoy-retry-on values).
type RetryOn uint32

// Retry conditions.
const (
	// RetryConnectFailure retries when connecting fails. The proxy retries
	// connect failures even without it, because nothing was sent.
	RetryConnectFailure RetryOn = 1 << iota
	// RetryRefusedStream retries HTTP/2 REFUSED_STREAM resets.
	RetryRefusedStream
	// RetryReset retries when the upstream resets or closes the connection
	// before sending a response.
	RetryReset
	// Retry5xx retries any 5xx response, resets and connect failures.
	Retry5xx
	// RetryGatewayError retries 502, 503 and 504 responses.
	RetryGatewayError
	// RetryRetriableStatusCodes retries the RetryPolicy's StatusCodes.
	RetryRetriableStatusCodes

	// The gRPC conditions (Envoy's x-envoy-retry-grpc-on, written in the
	// same retry_on list) retry a trailers-only response whose grpc-status,
	// in the response headers, is the named code. A gRPC error sent after
	// response headers or messages is relayed: part of the response may
	// already be with the client.

	// RetryGRPCCancelled retries grpc-status CANCELLED (1).
	RetryGRPCCancelled
	// RetryGRPCDeadlineExceeded retries grpc-status DEADLINE_EXCEEDED (4).
	RetryGRPCDeadlineExceeded
	// RetryGRPCResourceExhausted retries grpc-status RESOURCE_EXHAUSTED (8).
	RetryGRPCResourceExhausted
	// RetryGRPCInternal retries grpc-status INTERNAL (13).
	RetryGRPCInternal
	// RetryGRPCUnavailable retries grpc-status UNAVAILABLE (14).
	RetryGRPCUnavailable
)

// grpcRetryOn returns the retry condition of a gRPC status code
// (google.golang.org/grpc/codes), or 0 when none names it.
func grpcRetryOn(code int) RetryOn {
	switch code {
	case 1:
		return RetryGRPCCancelled
	case 4:
		return RetryGRPCDeadlineExceeded
	case 8:
		return RetryGRPCResourceExhausted
	case 13:
		return RetryGRPCInternal
	case 14:
		return RetryGRPCUnavailable
	}
	return 0
}

var retryOnNames = map[string]RetryOn{
	"connect-failure":            RetryConnectFailure,
	"refused-stream":             RetryRefusedStream,
	"reset":                      RetryReset,
	"5xx":                        Retry5xx,
	"gateway-error":              RetryGatewayError,
	"retriable-status-codes":     RetryRetriableStatusCodes,
	"cancelled":                  RetryGRPCCancelled,
	"deadline-exceeded":          RetryGRPCDeadlineExceeded,
	"resource-exhausted":         RetryGRPCResourceExhausted,
	"internal":                   RetryGRPCInternal,
	"unavailable":                RetryGRPCUnavailable,
	"retriable-4xx":              0, // accepted for compatibility, not supported
	"envoy-ratelimited":          0,
	"retriable-headers":          0,
	"reset-before-request":       RetryConnectFailure,
	"http3-post-connect-failure": 0,
}

// ParseRetryOn parses Envoy's comma-separated retry_on list, e.g.
// "5xx,connect-failure". Unknown names are an error; Envoy conditions that
// shoal does not implement are accepted and ignored.
func ParseRetryOn(s string) (RetryOn, error) {
	var on RetryOn
	for name := range strings.SplitSeq(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		bit, ok := retryOnNames[name]
		if !ok {
			return 0, fmt.Errorf("route: unknown retry condition %q", name)
		}
		on |= bit
	}
	return on, nil
}

// RetryPolicy is a route's retry policy. Retries go to another endpoint
// when one exists (never the same host twice) and apply only to requests
// that can be replayed: idempotent methods without a body, or bodies that
// fit the proxy's replay buffer.
type RetryPolicy struct {
	// On lists the conditions that trigger a retry.
	On RetryOn
	// NumRetries is the number of retries after the first attempt; zero
	// means 1 (Envoy's default).
	NumRetries int
	// PerTryTimeout bounds each attempt until response headers; zero means
	// only the route Timeout applies. Expiry counts as a retriable reset.
	PerTryTimeout time.Duration
	// StatusCodes are retried under RetryRetriableStatusCodes.
	StatusCodes []int
}

// Retries returns NumRetries with its default applied; nil-safe (0).
func (p *RetryPolicy) Retries() int {
	switch {
	case p == nil:
		return 0
	case p.NumRetries == 0:
		return 1
	}
	return p.NumRetries
}

// Has reports whether p retries on any of the conditions; nil-safe.
func (p *RetryPolicy) Has(on RetryOn) bool { return p != nil && p.On&on != 0 }

// RetryStatus reports whether a response status should be retried.
func (p *RetryPolicy) RetryStatus(code int) bool {
	if p == nil {
		return false
	}
	switch {
	case p.On&Retry5xx != 0 && code >= 500 && code <= 599:
		return true
	case p.On&RetryGatewayError != 0 && code >= 502 && code <= 504:
		return true
	case p.On&RetryRetriableStatusCodes != 0:
		for _, c := range p.StatusCodes {
			if c == code {
				return true
			}
		}
	}
	return false
}

// RetryGRPCStatus reports whether a trailers-only gRPC response with
// grpc-status code should be retried; nil-safe.
func (p *RetryPolicy) RetryGRPCStatus(code int) bool {
	return p.Has(grpcRetryOn(code))
}

// RetryReset reports whether a reset or a timed-out attempt (no response
// received) should be retried.
func (p *RetryPolicy) RetryReset() bool {
	return p.Has(RetryReset | Retry5xx | RetryGatewayError)
}

// HashKind is the source of a hash key.
type HashKind uint8

// Hash key sources.
const (
	// HashSourceIP hashes the client IP (Envoy connection_properties).
	HashSourceIP HashKind = iota + 1
	// HashHeader hashes the value of the header Name.
	HashHeader
	// HashCookie hashes the value of the cookie Name.
	HashCookie
)

// HashPolicy is one of a route's hash policies (Envoy RouteAction.HashPolicy).
type HashPolicy struct {
	// Kind is the key source.
	Kind HashKind
	// Name is the header or cookie name; ignored for HashSourceIP.
	Name string
	// Terminal stops evaluating later policies once this one yields a key.
	Terminal bool
}
