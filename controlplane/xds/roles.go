package xds

import (
	"fmt"
	"math"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

// nodeRole is what a node's metadata asks for; the zero value is a node
// without a role (every listener, default addresses).
type nodeRole struct {
	role                       string
	inbound, outbound, gateway uint32
}

// roleOf reads node's role metadata.
func roleOf(node *corev3.Node) (nodeRole, error) {
	fields := node.GetMetadata().GetFields()
	r := nodeRole{inbound: InboundPort, outbound: OutboundPort, gateway: GatewayPort}
	if v, ok := fields[MetadataRole]; ok {
		r.role = v.GetStringValue()
		if r.role != RoleSidecar && r.role != RoleGateway {
			return nodeRole{}, fmt.Errorf("node metadata %s: %q is not %q or %q", MetadataRole, r.role, RoleSidecar, RoleGateway)
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
		if r.role != p.role {
			return nodeRole{}, fmt.Errorf("node metadata %s: set for role %q, but %s is %q", p.key, p.role, MetadataRole, r.role)
		}
		n, err := port(v)
		if err != nil {
			return nodeRole{}, fmt.Errorf("node metadata %s: %w", p.key, err)
		}
		*p.dst = n
	}
	if r.role == "" {
		return nodeRole{}, nil
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

// key names the role's listener variant; "" for a node without a role.
func (r nodeRole) key() string {
	switch r.role {
	case RoleSidecar:
		return fmt.Sprintf("sidecar/in=%d/out=%d", r.inbound, r.outbound)
	case RoleGateway:
		return fmt.Sprintf("gateway/%d", r.gateway)
	}
	return ""
}

// listeners returns the listeners of rs (a profile's, sorted by name) that
// the role asks for, on its ports. rs is not modified; rewritten listeners
// are copies.
func (r nodeRole) listeners(rs []types.Resource) []types.Resource {
	want := map[string]uint32{ListenerInbound: r.inbound, ListenerOutbound: r.outbound}
	if r.role == RoleGateway {
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

// roleChecked refuses a listener watch whose node asks for an invalid role
// before the gate can hold it: a held watch is opened later, when its
// error can no longer fail the stream, and the proxy would wait forever.
type roleChecked struct{ cache.Cache }

// CreateWatch implements cache.ConfigWatcher for SotW.
func (c roleChecked) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	if err := checkRole(req.GetNode(), req.GetTypeUrl()); err != nil {
		return nil, err
	}
	return c.Cache.CreateWatch(req, sub, ch)
}

// CreateDeltaWatch implements cache.ConfigWatcher for delta.
func (c roleChecked) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, ch chan cache.DeltaResponse) (func(), error) {
	if err := checkRole(req.GetNode(), req.GetTypeUrl()); err != nil {
		return nil, err
	}
	return c.Cache.CreateDeltaWatch(req, sub, ch)
}

// checkRole returns InvalidArgument naming the metadata key when a listener
// request's node asks for an invalid role.
func checkRole(node *corev3.Node, typeURL string) error {
	if typeURL != listenerType {
		return nil
	}
	if _, err := roleOf(node); err != nil {
		return status.Error(codes.InvalidArgument, "xds: "+err.Error())
	}
	return nil
}
