package xds

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// endpoint builds a registered instance; zone, weight and metadata are
// optional (left zero for the defaults).
func endpoint(svc, id, addr string, port int, h registry.Health, opts ...func(*registry.Instance)) registry.Endpoint {
	in := &registry.Instance{ID: id, Service: svc, Address: addr, Port: port, Protocol: registry.ProtocolHTTP}
	for _, o := range opts {
		o(in)
	}
	return registry.Endpoint{Instance: in, Health: h}
}

func mtls() func(*registry.Instance) {
	return func(in *registry.Instance) { in.TLS = registry.TLSMutual }
}
func zone(z string) func(*registry.Instance) { return func(in *registry.Instance) { in.Zone = z } }
func weight(w int) func(*registry.Instance)  { return func(in *registry.Instance) { in.Weight = w } }
func grpcProto() func(*registry.Instance) {
	return func(in *registry.Instance) { in.Protocol = registry.ProtocolGRPC }
}
func labels(kv ...string) func(*registry.Instance) {
	return func(in *registry.Instance) {
		in.Metadata = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			in.Metadata[kv[i]] = kv[i+1]
		}
	}
}

// ordersFleet is three instances of orders in two zones and one of users.
func ordersFleet() []registry.Endpoint {
	return []registry.Endpoint{
		endpoint("orders", "orders-1", "10.0.0.1", 3001, registry.HealthHealthy, zone("a"), labels("version", "v1")),
		endpoint("orders", "orders-2", "10.0.0.2", 3001, registry.HealthUnknown, zone("a"), labels("version", "v1")),
		endpoint("orders", "orders-3", "10.0.0.3", 3001, registry.HealthHealthy, zone("b"), weight(3), labels("version", "v2")),
		endpoint("users", "users-1", "10.0.1.1", 4001, registry.HealthHealthy),
	}
}

func route(name string, hosts []string, rules ...*shoalv1.Rule) *shoalv1.Route {
	return &shoalv1.Route{Name: name, Hosts: hosts, Rules: rules, Version: "7"}
}

func rule(s shoalv1.Strategy, dests ...*shoalv1.Destination) *shoalv1.Rule {
	return &shoalv1.Rule{Strategy: s, Destinations: dests}
}

func to(svc string) *shoalv1.Destination { return &shoalv1.Destination{Service: svc} }

func toW(svc string, w int32, subset ...string) *shoalv1.Destination {
	d := &shoalv1.Destination{Service: svc, Weight: w}
	if len(subset) > 0 {
		d.Subset = map[string]string{}
		for i := 0; i+1 < len(subset); i += 2 {
			d.Subset[subset[i]] = subset[i+1]
		}
	}
	return d
}

func headerKey(h string) *shoalv1.HashKey {
	return &shoalv1.HashKey{Key: &shoalv1.HashKey_Header{Header: h}}
}

func cookieKey(c string) *shoalv1.HashKey {
	return &shoalv1.HashKey{Key: &shoalv1.HashKey_Cookie{Cookie: c}}
}

func withHash(r *shoalv1.Rule, hk *shoalv1.HashKey) *shoalv1.Rule { r.HashKey = hk; return r }

func dur(d time.Duration) *durationpb.Duration { return durationpb.New(d) }
