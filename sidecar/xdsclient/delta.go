package xdsclient

import (
	"maps"

	"google.golang.org/grpc"

	discoveryv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/service/discovery/v3"
)

// deltaStream speaks incremental xDS on one ADS stream
// (https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol#incremental-xds).
type deltaStream struct {
	s    grpc.ClientStream
	node *Node
	// nodeSent: the node goes on the first request of the stream only.
	nodeSent bool
	// subs is the subscription sent so far per type; absent until the
	// type's first request.
	subs map[string]map[string]bool
}

func newDelta(s grpc.ClientStream, node *Node) *deltaStream {
	return &deltaStream{s: s, node: node, subs: map[string]map[string]bool{}}
}

func (d *deltaStream) send(req *discoveryv3.DeltaDiscoveryRequest) error {
	if !d.nodeSent {
		req.Node = d.node
		d.nodeSent = true
	}
	return d.s.SendMsg(req)
}

func (d *deltaStream) recv() (*response, error) {
	var m discoveryv3.DeltaDiscoveryResponse
	if err := d.s.RecvMsg(&m); err != nil {
		// A malformed message fails the stream (codes.Internal): without a
		// type URL and nonce there is nothing to NACK.
		return nil, err
	}
	r := &response{typeURL: m.GetTypeUrl(), nonce: m.GetNonce(), version: m.GetSystemVersionInfo()}
	r.u, r.err = decodeDelta(&m)
	return r, nil
}

// decodeDelta decodes and validates every resource of m.
func decodeDelta(m *discoveryv3.DeltaDiscoveryResponse) (*update, error) {
	u := newUpdate(m.GetTypeUrl(), m.GetSystemVersionInfo(), false)
	var errs []error
	for _, r := range m.GetResources() {
		if r.GetResource() == nil {
			continue // a name-only entry (e.g. an alias) carries nothing to apply
		}
		if err := u.add(r.GetName(), r.GetVersion(), r.GetResource()); err != nil {
			errs = append(errs, err)
		}
	}
	u.removed = m.GetRemovedResources()
	if err := joinErrors(errs); err != nil {
		return nil, err
	}
	return u, nil
}

// subscribe sends resource_names_subscribe/unsubscribe for the difference
// between the sent subscription and want. The first request of a type
// carries initial_resource_versions so that a reconnect only receives what
// changed. An empty first subscription is not sent: the server would read
// it as a legacy wildcard.
func (d *deltaStream) subscribe(typeURL string, want map[string]bool, held map[string]string) error {
	cur, started := d.subs[typeURL]
	req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL}
	switch {
	case !started && len(want) == 0:
		return nil
	case !started:
		req.ResourceNamesSubscribe = sortedNames(want)
		req.InitialResourceVersions = held
	default:
		for _, n := range sortedNames(want) {
			if !cur[n] {
				req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, n)
			}
		}
		for _, n := range sortedNames(cur) {
			if !want[n] {
				req.ResourceNamesUnsubscribe = append(req.ResourceNamesUnsubscribe, n)
			}
		}
		if len(req.ResourceNamesSubscribe)+len(req.ResourceNamesUnsubscribe) == 0 {
			return nil
		}
	}
	d.subs[typeURL] = maps.Clone(want)
	return d.send(req)
}

// ack echoes the response nonce.
func (d *deltaStream) ack(r *response) error {
	return d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.typeURL, ResponseNonce: r.nonce})
}

// nack echoes the nonce with error_detail set.
func (d *deltaStream) nack(r *response, err error) error {
	return d.send(&discoveryv3.DeltaDiscoveryRequest{
		TypeUrl:       r.typeURL,
		ResponseNonce: r.nonce,
		ErrorDetail:   nackStatus(err),
	})
}
