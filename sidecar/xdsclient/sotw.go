package xdsclient

import (
	"maps"

	"google.golang.org/grpc"

	discoveryv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/service/discovery/v3"
)

// sotwStream speaks state-of-the-world xDS on one ADS stream
// (https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol#ack-nack-and-resource-type-instance-version).
//
// A wildcard subscription is sent as an empty resource_names list (legacy
// wildcard), not as "*": go-control-plane's SnapshotCache in ADS mode only
// answers a request whose names cover every resource of the type, which
// "*" never does.
type sotwStream struct {
	s    grpc.ClientStream
	node *Node
	// nodeSent: the node goes on the first request of the stream only.
	nodeSent bool
	// names is the subscription sent so far per type; absent until the
	// type's first request.
	names map[string]map[string]bool
	// nonce is the last nonce received per type; every request echoes it.
	nonce map[string]string
	// version is the last version ACKed on this stream per type. A new
	// stream starts empty so the server sends the full state.
	version map[string]string
}

func newSotW(s grpc.ClientStream, node *Node) *sotwStream {
	return &sotwStream{
		s:       s,
		node:    node,
		names:   map[string]map[string]bool{},
		nonce:   map[string]string{},
		version: map[string]string{},
	}
}

func (s *sotwStream) recv() (*response, error) {
	var m discoveryv3.DiscoveryResponse
	if err := s.s.RecvMsg(&m); err != nil {
		// A malformed message fails the stream (codes.Internal): without a
		// type URL and nonce there is nothing to NACK.
		return nil, err
	}
	r := &response{typeURL: m.GetTypeUrl(), nonce: m.GetNonce(), version: m.GetVersionInfo()}
	r.u, r.err = decodeSotW(&m)
	return r, nil
}

// decodeSotW decodes and validates every resource of m. Listener and
// cluster responses carry the full state of their type.
func decodeSotW(m *discoveryv3.DiscoveryResponse) (*update, error) {
	full := m.GetTypeUrl() == ListenerType || m.GetTypeUrl() == ClusterType
	u := newUpdate(m.GetTypeUrl(), m.GetVersionInfo(), full)
	var errs []error
	for _, a := range m.GetResources() {
		if err := u.add("", m.GetVersionInfo(), a); err != nil {
			errs = append(errs, err)
		}
	}
	if err := joinErrors(errs); err != nil {
		return nil, err
	}
	return u, nil
}

// request sends the type's current state: version, names and nonce.
func (s *sotwStream) request(typeURL string, errDetail error) error {
	req := &discoveryv3.DiscoveryRequest{
		TypeUrl:       typeURL,
		VersionInfo:   s.version[typeURL],
		ResponseNonce: s.nonce[typeURL],
	}
	if names := s.names[typeURL]; !names[wildcard] {
		req.ResourceNames = sortedNames(names)
	}
	if errDetail != nil {
		req.ErrorDetail = nackStatus(errDetail)
	}
	if !s.nodeSent {
		req.Node = s.node
		s.nodeSent = true
	}
	return s.s.SendMsg(req)
}

// subscribe re-sends the type's request when its names change. An empty
// first subscription is not sent: it would be a legacy wildcard.
func (s *sotwStream) subscribe(typeURL string, want map[string]bool, _ map[string]string) error {
	cur, started := s.names[typeURL]
	if (!started && len(want) == 0) || (started && sameSet(cur, want)) {
		return nil
	}
	s.names[typeURL] = maps.Clone(want)
	return s.request(typeURL, nil)
}

// ack echoes the response's version and nonce.
func (s *sotwStream) ack(r *response) error {
	s.nonce[r.typeURL] = r.nonce
	s.version[r.typeURL] = r.version
	return s.request(r.typeURL, nil)
}

// nack echoes the nonce, keeps the previous version, and sets error_detail.
func (s *sotwStream) nack(r *response, err error) error {
	s.nonce[r.typeURL] = r.nonce
	return s.request(r.typeURL, err)
}
