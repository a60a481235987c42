package xdswire

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Enums keep the wire value; String and MarshalJSON print the proto name
// (a number for a value the protos do not define).

func enumName(names map[int32]string, v int32) string {
	if n, ok := names[v]; ok {
		return n
	}
	return strconv.Itoa(int(v))
}

func enumJSON(names map[int32]string, v int32) ([]byte, error) {
	if n, ok := names[v]; ok {
		return []byte(strconv.Quote(n)), nil
	}
	return []byte(strconv.Itoa(int(v))), nil
}

// DiscoveryType is envoy.config.cluster.v3.Cluster.DiscoveryType.
type DiscoveryType int32

// Discovery types.
const (
	DiscoveryStatic DiscoveryType = iota
	DiscoveryStrictDNS
	DiscoveryLogicalDNS
	DiscoveryEDS
	DiscoveryOriginalDst
)

var discoveryTypeNames = map[int32]string{0: "STATIC", 1: "STRICT_DNS", 2: "LOGICAL_DNS", 3: "EDS", 4: "ORIGINAL_DST"}

func (t DiscoveryType) String() string               { return enumName(discoveryTypeNames, int32(t)) }
func (t DiscoveryType) MarshalJSON() ([]byte, error) { return enumJSON(discoveryTypeNames, int32(t)) }
func (t DiscoveryType) defined() bool                { _, ok := discoveryTypeNames[int32(t)]; return ok }

// LBPolicy is envoy.config.cluster.v3.Cluster.LbPolicy.
type LBPolicy int32

// Load balancing policies (4 is reserved).
const (
	LBRoundRobin                LBPolicy = 0
	LBLeastRequest              LBPolicy = 1
	LBRingHash                  LBPolicy = 2
	LBRandom                    LBPolicy = 3
	LBMaglev                    LBPolicy = 5
	LBClusterProvided           LBPolicy = 6
	LBLoadBalancingPolicyConfig LBPolicy = 7
)

var lbPolicyNames = map[int32]string{0: "ROUND_ROBIN", 1: "LEAST_REQUEST", 2: "RING_HASH", 3: "RANDOM",
	5: "MAGLEV", 6: "CLUSTER_PROVIDED", 7: "LOAD_BALANCING_POLICY_CONFIG"}

func (p LBPolicy) String() string               { return enumName(lbPolicyNames, int32(p)) }
func (p LBPolicy) MarshalJSON() ([]byte, error) { return enumJSON(lbPolicyNames, int32(p)) }
func (p LBPolicy) defined() bool                { _, ok := lbPolicyNames[int32(p)]; return ok }

// RoutingPriority is envoy.config.core.v3.RoutingPriority.
type RoutingPriority int32

// Routing priorities.
const (
	PriorityDefault RoutingPriority = iota
	PriorityHigh
)

var routingPriorityNames = map[int32]string{0: "DEFAULT", 1: "HIGH"}

func (p RoutingPriority) String() string { return enumName(routingPriorityNames, int32(p)) }
func (p RoutingPriority) MarshalJSON() ([]byte, error) {
	return enumJSON(routingPriorityNames, int32(p))
}
func (p RoutingPriority) defined() bool { _, ok := routingPriorityNames[int32(p)]; return ok }

// HashFunction is the ring hash's hash function.
type HashFunction int32

// Hash functions.
const (
	HashXX HashFunction = iota
	HashMurmur2
)

var hashFunctionNames = map[int32]string{0: "XX_HASH", 1: "MURMUR_HASH_2"}

func (h HashFunction) String() string               { return enumName(hashFunctionNames, int32(h)) }
func (h HashFunction) MarshalJSON() ([]byte, error) { return enumJSON(hashFunctionNames, int32(h)) }
func (h HashFunction) defined() bool                { _, ok := hashFunctionNames[int32(h)]; return ok }

// HealthStatus is envoy.config.core.v3.HealthStatus.
type HealthStatus int32

// Health statuses.
const (
	HealthUnknown HealthStatus = iota
	HealthHealthy
	HealthUnhealthy
	HealthDraining
	HealthTimeout
	HealthDegraded
)

var healthStatusNames = map[int32]string{0: "UNKNOWN", 1: "HEALTHY", 2: "UNHEALTHY", 3: "DRAINING", 4: "TIMEOUT", 5: "DEGRADED"}

func (h HealthStatus) String() string               { return enumName(healthStatusNames, int32(h)) }
func (h HealthStatus) MarshalJSON() ([]byte, error) { return enumJSON(healthStatusNames, int32(h)) }
func (h HealthStatus) defined() bool                { _, ok := healthStatusNames[int32(h)]; return ok }

// SocketProtocol is envoy.config.core.v3.SocketAddress.Protocol.
type SocketProtocol int32

// Socket protocols.
const (
	ProtocolTCP SocketProtocol = iota
	ProtocolUDP
)

var socketProtocolNames = map[int32]string{0: "TCP", 1: "UDP"}

func (p SocketProtocol) String() string { return enumName(socketProtocolNames, int32(p)) }
func (p SocketProtocol) MarshalJSON() ([]byte, error) {
	return enumJSON(socketProtocolNames, int32(p))
}
func (p SocketProtocol) defined() bool { _, ok := socketProtocolNames[int32(p)]; return ok }

// APIVersion is envoy.config.core.v3.ApiVersion.
type APIVersion int32

var apiVersionNames = map[int32]string{0: "AUTO", 1: "V2", 2: "V3"}

func (v APIVersion) String() string               { return enumName(apiVersionNames, int32(v)) }
func (v APIVersion) MarshalJSON() ([]byte, error) { return enumJSON(apiVersionNames, int32(v)) }

// MarshalJSON writes t as protojson writes an Any: "@type" and the
// decoded config's fields.
func (t TypedConfig) MarshalJSON() ([]byte, error) {
	var v any
	if t.HCM != nil {
		v = t.HCM
	}
	return anyJSON(t.TypeURL, v)
}

// MarshalJSON writes o as protojson writes an Any.
func (o ProtocolOptions) MarshalJSON() ([]byte, error) {
	type fields struct {
		ExplicitHTTPConfig          *ExplicitHTTPConfig `json:"explicit_http_config,omitempty"`
		UseDownstreamProtocolConfig *Empty              `json:"use_downstream_protocol_config,omitempty"`
		AutoConfig                  *Empty              `json:"auto_config,omitempty"`
	}
	return anyJSON(o.TypeURL, fields{o.ExplicitHTTPConfig, o.UseDownstreamProtocolConfig, o.AutoConfig})
}

func anyJSON(typeURL string, v any) ([]byte, error) {
	head, err := json.Marshal(map[string]string{"@type": typeURL})
	if err != nil || v == nil {
		return head, err
	}
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(body, []byte("{}")) {
		return head, nil
	}
	// {"@type":"..."} + {"a":1} -> {"@type":"...","a":1}
	return append(append(head[:len(head)-1], ','), body[1:]...), nil
}
