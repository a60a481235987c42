package xds

import (
	"fmt"
	"math"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Node metadata with which a proxy asks for the listeners of its role
// (issue 16: every Envoy got 0.0.0.0:15006, 0.0.0.0:8080 and
// 127.0.0.1:15001, so two could not run on one host). Ports are numbers or
// decimal strings.
//
//	node:
//	  metadata:
//	    shoal.role: sidecar        # inbound + outbound listeners only
//	    shoal.inbound_port: 15106  # default InboundPort (15006)
//	    shoal.outbound_port: 15101 # default OutboundPort (15001)
//
//	    shoal.role: gateway        # the gateway listener only
//	    shoal.gateway_port: 8081   # default GatewayPort (8080)
//
// A node without shoal.role gets every listener at the default addresses,
// as before: the shoal sidecar and gateway (which bind their own flags and
// read only the listeners' routing) and proxyless gRPC clients (which read
// the API listeners). Role nodes get no API listeners: a proxy has no use
// for them. Invalid metadata fails the node's listener subscription with
// InvalidArgument naming the key.
const (
	MetadataRole         = "shoal.role"
	MetadataInboundPort  = "shoal.inbound_port"
	MetadataOutboundPort = "shoal.outbound_port"
	MetadataGatewayPort  = "shoal.gateway_port"
)

// Roles a node may ask for with MetadataRole.
const (
	RoleSidecar = "sidecar"
	RoleGateway = "gateway"
)

// NodeRole is what a node's metadata asks for; the zero value is a node
// without a role (every listener, default addresses).
type NodeRole struct {
	// Role is RoleSidecar, RoleGateway or "" (none).
	Role                       string
	inbound, outbound, gateway uint32
}

// RoleOf reads node's role metadata.
func RoleOf(node *corev3.Node) (NodeRole, error) {
	fields := node.GetMetadata().GetFields()
	r := NodeRole{inbound: InboundPort, outbound: OutboundPort, gateway: GatewayPort}
	if v, ok := fields[MetadataRole]; ok {
		r.Role = v.GetStringValue()
		if r.Role != RoleSidecar && r.Role != RoleGateway {
			return NodeRole{}, fmt.Errorf("node metadata %s: %q is not %q or %q", MetadataRole, r.Role, RoleSidecar, RoleGateway)
		}
	}
	ports := []struct {
		key  string
		role string
		dst  *uint32
	}{
		{MetadataInboundPort, RoleSidecar, &r.inbound},
		{MetadataOutboundPort, RoleSidecar, &r.outbound},
		{MetadataGatewayPort, RoleGateway, &r.gateway},
	}
	for _, p := range ports {
		v, ok := fields[p.key]
		if !ok {
			continue
		}
		if r.Role != p.role {
			return NodeRole{}, fmt.Errorf("node metadata %s: set for role %q, but %s is %q", p.key, p.role, MetadataRole, r.Role)
		}
		n, err := port(v)
		if err != nil {
			return NodeRole{}, fmt.Errorf("node metadata %s: %w", p.key, err)
		}
		*p.dst = n
	}
	if r.Role == "" {
		return NodeRole{}, nil
	}
	return r, nil
}

func port(v *structpb.Value) (uint32, error) {
	var f float64
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		f = k.NumberValue
	case *structpb.Value_StringValue:
		n, err := strconv.ParseUint(k.StringValue, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("%q is not a port", k.StringValue)
		}
		f = float64(n)
	default:
		return 0, fmt.Errorf("%v is not a port", v.AsInterface())
	}
	if f < 1 || f > 65535 || f != math.Trunc(f) {
		return 0, fmt.Errorf("%v is not a port (1-65535)", f)
	}
	return uint32(f), nil
}

// Key names the role's listener variant; "" for a node without a role.
func (r NodeRole) Key() string {
	switch r.Role {
	case RoleSidecar:
		return fmt.Sprintf("sidecar/in=%d/out=%d", r.inbound, r.outbound)
	case RoleGateway:
		return fmt.Sprintf("gateway/%d", r.gateway)
	}
	return ""
}

// Listeners returns the listeners of rs (a profile's, sorted by name) that
// the role asks for, on its ports. rs is not modified; rewritten listeners
// are copies.
func (r NodeRole) Listeners(rs []types.Resource) []types.Resource {
	want := map[string]uint32{ListenerInbound: r.inbound, ListenerOutbound: r.outbound}
	if r.Role == RoleGateway {
		want = map[string]uint32{ListenerGateway: r.gateway}
	}
	var out []types.Resource
	for _, res := range rs {
		l, ok := res.(*listenerv3.Listener)
		if !ok {
			continue
		}
		p, ok := want[l.GetName()]
		if !ok {
			continue
		}
		l = proto.CloneOf(l)
		l.Address.GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: p}
		out = append(out, l)
	}
	return out
}
