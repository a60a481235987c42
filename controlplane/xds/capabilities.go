package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Capabilities says which xDS features a client takes. A feature a client
// lacks is replaced by its closest supported equivalent, so that no client
// is ever sent a resource it would NACK. The zero value is the most
// conservative client (round robin and ring hash on a header or the
// channel, which every xDS client supports).
type Capabilities struct {
	// Profile names the capability set; clients with the same Profile get
	// byte-identical resources. It is never empty for the predefined sets.
	Profile string
	// LeastRequest: Cluster.lb_policy LEAST_REQUEST (gRFC A48). grpc-js-xds
	// NACKs it; without it least request becomes round robin.
	LeastRequest bool
	// Maglev: Cluster.lb_policy MAGLEV. gRPC NACKs it; without it maglev
	// becomes ring hash (both are consistent hashing).
	Maglev bool
	// LeastLoaded: Cluster.load_balancing_policy
	// client_side_weighted_round_robin (gRFC A58, weights from the ORCA
	// load reports on responses). gRPC-Node has no A58; without it least
	// loaded becomes least request, or round robin where that is missing
	// too.
	LeastLoaded bool
	// Random: Cluster.lb_policy RANDOM. gRPC NACKs it; without it random
	// becomes round robin.
	Random bool
	// SourceIPHash: hash_policy connection_properties.source_ip. gRPC
	// ignores it (gRFC A42), and a ring hash without a usable policy picks a
	// random backend per RPC; without it source-IP hashing becomes hashing
	// on filter_state io.grpc.channel_id, which keeps each client channel on
	// one backend — the proxyless equivalent of "same client, same backend".
	SourceIPHash bool
	// CookieHash: hash_policy cookie. gRPC has no cookies; without it cookie
	// hashing becomes channel-id hashing like SourceIPHash.
	CookieHash bool
	// HTTPProxy: the client is an HTTP proxy (Envoy, the shoal sidecar): it
	// takes route timeouts, HTTP retry conditions (5xx, connect-failure...),
	// retriable status codes, per-try timeouts, cluster upstream protocol
	// options and listener addresses. Proxyless gRPC clients get routes
	// bounded by the RPC deadline only (gRPC ignores RouteAction.timeout) and
	// retry policies reduced to gRPC status codes (gRFC A44).
	HTTPProxy bool
}

// Predefined capability profiles.
var (
	// CapabilitiesEnvoy is Envoy and the shoal sidecar: everything.
	CapabilitiesEnvoy = Capabilities{
		Profile: "envoy", LeastRequest: true, LeastLoaded: true, Maglev: true, Random: true,
		SourceIPHash: true, CookieHash: true, HTTPProxy: true,
	}
	// CapabilitiesGRPCGo is grpc-go's xDS client: round robin, ring hash
	// (xxHash only), least request (A48), weighted round robin on ORCA
	// reports (A58); header and channel-id hashing.
	CapabilitiesGRPCGo = Capabilities{Profile: "grpc-go", LeastRequest: true, LeastLoaded: true}
	// CapabilitiesMinimal is @grpc/grpc-js-xds and any client not
	// recognised: round robin and ring hash only.
	CapabilitiesMinimal = Capabilities{Profile: "minimal"}
)

// Profiles lists the predefined capability sets, the ones CapabilitiesFor
// returns.
func Profiles() []Capabilities {
	return []Capabilities{CapabilitiesEnvoy, CapabilitiesGRPCGo, CapabilitiesMinimal}
}

// User agents of known clients (Node.user_agent_name).
const (
	userAgentEnvoy   = "envoy"
	userAgentSidecar = "shoal-sidecar"
	userAgentGRPCGo  = "gRPC Go"
)

// CapabilitiesFor decides what the client that sent node can take, from
// its user_agent_name: Envoy ("envoy") and the shoal sidecar
// ("shoal-sidecar") take everything, grpc-go ("gRPC Go") the gRPC subset
// with least request, and everything else — @grpc/grpc-js-xds ("gRPC Node
// Pure JS"), other gRPC languages, unknown clients and a nil node — the
// minimal set, which no xDS client NACKs.
func CapabilitiesFor(node *corev3.Node) Capabilities {
	switch node.GetUserAgentName() {
	case userAgentEnvoy, userAgentSidecar:
		return CapabilitiesEnvoy
	case userAgentGRPCGo:
		return CapabilitiesGRPCGo
	}
	return CapabilitiesMinimal
}
