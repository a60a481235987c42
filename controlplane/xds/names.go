package xds

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// Fixed resource names from the ARCHITECTURE.md xDS naming contract.
const (
	ListenerOutbound = "outbound"
	ListenerInbound  = "inbound"
	ListenerGateway  = "gateway"

	RouteOutbound = "outbound"
	RouteGateway  = "gateway"

	// LocalAppCluster is the cluster the inbound listener routes to. Every
	// proxy defines it itself (the shoal sidecar from --app-port, Envoy in
	// its bootstrap's static_resources): only the proxy knows its app.
	LocalAppCluster = "local_app"
)

// lbKind is the load-balancing policy a cluster variant uses, after the
// client's capabilities were applied.
type lbKind uint8

const (
	lbRoundRobin lbKind = iota
	lbLeastRequest
	lbRingHash
	lbMaglev
	lbRandom
	lbLeastLoaded
)

// suffix is the cluster-name suffix of a variant; round robin is the
// service's default cluster and has none.
func (k lbKind) suffix() string {
	switch k {
	case lbLeastRequest:
		return "least_request"
	case lbRingHash:
		return "ring_hash"
	case lbMaglev:
		return "maglev"
	case lbRandom:
		return "random"
	case lbLeastLoaded:
		return "least_loaded"
	}
	return ""
}

// subsetName is the deterministic name of a subset of a service: the
// service followed by its labels, sorted by key, in brackets. Without
// labels it is the service name.
func subsetName(service string, labels map[string]string) string {
	if len(labels) == 0 {
		return service
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(service)
	b.WriteByte('[')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(url.QueryEscape(k))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(labels[k]))
	}
	b.WriteByte(']')
	return b.String()
}

// ClusterName returns the name of the cluster for a service (or a subset
// name from subsetName) under a load-balancing variant.
func clusterName(claName string, k lbKind) string {
	if s := k.suffix(); s != "" {
		return claName + "/" + s
	}
	return claName
}

// variantName is clusterName with a bounded-load factor and a rule's
// proxy settings: a consistent hashing cluster whose rule sets
// balance_factor N is "<name>/balance-N", and a rule with circuit
// breakers, slow start or stall detection of its own (issue 17) adds
// "/cfg-<hash>" (tuning.key), after "/round_robin" for the round robin
// default, so rules with different bounds or settings never share a
// cluster and the segment after the first "/" is always the strategy.
func variantName(claName string, k lbKind, balance uint32, tu *tuning) string {
	name := clusterName(claName, k)
	if balance != 0 {
		name += "/balance-" + strconv.FormatUint(uint64(balance), 10)
	}
	if tu != nil {
		if k == lbRoundRobin {
			name += "/round_robin"
		}
		name += "/" + tu.key
	}
	return name
}

// boundedLoad is the balance factor a cluster of kind k takes: only
// consistent hashing has one (a client that maps hashing to another
// policy drops it).
func boundedLoad(k lbKind, balance uint32) uint32 {
	if k != lbRingHash && k != lbMaglev {
		return 0
	}
	return balance
}

// Type URLs, short.
const (
	listenerType = resource.ListenerType
	routeType    = resource.RouteType
	clusterType  = resource.ClusterType
	endpointType = resource.EndpointType
)
