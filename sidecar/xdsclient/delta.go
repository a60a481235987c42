package xdsclient

import (
	"fmt"
	"maps"

	"google.golang.org/grpc"

	"github.com/shoal-mesh/shoal/sidecar/internal/xdswire"
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

func (d *deltaStream) send(req *xdswire.DeltaDiscoveryRequest) error {
	if !d.nodeSent {
		req.Node = d.node
		d.nodeSent = true
	}
	b := req.Marshal()
	return d.s.SendMsg(&b)
}

func (d *deltaStream) recv() (*response, error) {
	b, err := recvFrame(d.s)
	if err != nil {
		return nil, err
	}
	var m xdswire.DeltaDiscoveryResponse
	if err := m.Unmarshal(b); err != nil {
		// Without a type URL and nonce there is nothing to NACK.
		return nil, fmt.Errorf("xdsclient: malformed DeltaDiscoveryResponse: %w", err)
	}
	r := &response{typeURL: m.TypeURL, nonce: m.Nonce, version: m.SystemVersionInfo}
	r.u, r.err = decodeDelta(&m)
	return r, nil
}

// decodeDelta decodes and validates every resource of m.
func decodeDelta(m *xdswire.DeltaDiscoveryResponse) (*update, error) {
	u := newUpdate(m.TypeURL, m.SystemVersionInfo, false)
	var errs []error
	for _, r := range m.Resources {
		if r.Resource == nil {
			continue // a name-only entry (e.g. an alias) carries nothing to apply
		}
		if err := u.add(r.Name, r.Version, *r.Resource); err != nil {
			errs = append(errs, err)
		}
	}
	u.removed = m.RemovedResources
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
	req := &xdswire.DeltaDiscoveryRequest{TypeURL: typeURL}
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
	return d.send(&xdswire.DeltaDiscoveryRequest{TypeURL: r.typeURL, ResponseNonce: r.nonce})
}

// nack echoes the nonce with error_detail set.
func (d *deltaStream) nack(r *response, err error) error {
	return d.send(&xdswire.DeltaDiscoveryRequest{
		TypeURL:       r.typeURL,
		ResponseNonce: r.nonce,
		ErrorDetail:   nackStatus(err),
	})
}
