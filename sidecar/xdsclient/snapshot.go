package xdsclient

import (
	"fmt"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"

	clusterv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/cluster/v3"
	corev3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/core/v3"
	endpointv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/endpoint/v3"
	listenerv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/listener/v3"
	routev3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/route/v3"
	"github.com/shoal-mesh/shoal/sidecar/internal/xdsres"
)

// Type URLs of the resources the client subscribes to.
const (
	ListenerType = xdsres.ListenerType
	RouteType    = xdsres.RouteType
	ClusterType  = xdsres.ClusterType
	EndpointType = xdsres.EndpointType
)

// The resource types of a Snapshot: Envoy's v3 messages, generated from a
// trimmed copy of Envoy's protos that holds the fields the sidecar reads
// (package sidecar/internal/xdspb, tools/protosubset/envoy.keep).
type (
	// Resource is one of *Listener, *RouteConfiguration, *Cluster and
	// *ClusterLoadAssignment.
	Resource              = proto.Message
	Listener              = listenerv3.Listener
	RouteConfiguration    = routev3.RouteConfiguration
	Cluster               = clusterv3.Cluster
	ClusterLoadAssignment = endpointv3.ClusterLoadAssignment
	// Node is the identity sent to the control plane; see NewNode.
	Node = corev3.Node
)

// Snapshot is one consistent view of the xDS configuration. It holds each
// resource as received (its wire form, validated when it was accepted);
// Listener, RouteConfiguration, Cluster and ClusterLoadAssignment decode
// one on demand, so a delivered configuration costs its bytes, not its
// decoded messages (issue 12: decode, validate, build, drop). A delivered
// Snapshot is immutable and safe for concurrent use.
type Snapshot struct {
	// Versions maps each type URL to the last accepted version_info (SotW)
	// or system_version_info (delta).
	Versions map[string]string
	// MissingRoutes and MissingEndpoints list names referenced by listeners
	// or EDS clusters but not received: non-empty only when the snapshot was
	// delivered after Config.SettleTimeout.
	MissingRoutes, MissingEndpoints []string
	// FromState reports that the snapshot was read from Config.StateDir,
	// not received from the server in this run.
	FromState bool

	// resourceVersions holds per-resource versions by type URL; they are
	// persisted so that delta reconnects can send initial_resource_versions.
	resourceVersions map[string]map[string]string
	// raw holds each resource's wire form by type URL and name: the state
	// file, /config_dump and the accessors read it.
	raw map[string]map[string][]byte
}

// NewSnapshot returns a snapshot of resources given in their wire form by
// type URL and name, for consumers' tests and tools; they are not
// validated. The maps are used as they are and must not be modified.
func NewSnapshot(raw map[string]map[string][]byte) *Snapshot {
	return &Snapshot{Versions: map[string]string{}, resourceVersions: map[string]map[string]string{}, raw: raw}
}

// Complete reports whether every referenced route configuration and
// endpoint assignment is present.
func (s *Snapshot) Complete() bool {
	return len(s.MissingRoutes) == 0 && len(s.MissingEndpoints) == 0
}

// Raw returns the wire form of the resources of typeURL by name, as
// received. The map and the bytes are shared and must not be modified.
func (s *Snapshot) Raw(typeURL string) map[string][]byte { return s.raw[typeURL] }

// Names returns the names of the resources of typeURL, sorted.
func (s *Snapshot) Names(typeURL string) []string { return slices.Sorted(maps.Keys(s.raw[typeURL])) }

// Has reports whether s holds the resource typeURL/name.
func (s *Snapshot) Has(typeURL, name string) bool {
	_, ok := s.raw[typeURL][name]
	return ok
}

// Listener decodes the listener name; nil, nil if s has none.
func (s *Snapshot) Listener(name string) (*Listener, error) {
	return decodeHeld[*Listener](s, ListenerType, name)
}

// RouteConfiguration decodes the route configuration name; nil, nil if s
// has none.
func (s *Snapshot) RouteConfiguration(name string) (*RouteConfiguration, error) {
	return decodeHeld[*RouteConfiguration](s, RouteType, name)
}

// Cluster decodes the cluster name; nil, nil if s has none.
func (s *Snapshot) Cluster(name string) (*Cluster, error) {
	return decodeHeld[*Cluster](s, ClusterType, name)
}

// ClusterLoadAssignment decodes the endpoint assignment of the EDS service
// name; nil, nil if s has none.
func (s *Snapshot) ClusterLoadAssignment(name string) (*ClusterLoadAssignment, error) {
	return decodeHeld[*ClusterLoadAssignment](s, EndpointType, name)
}

// decodeHeld decodes a held resource. Each call returns a new message,
// owned by the caller.
func decodeHeld[T Resource](s *Snapshot, typeURL, name string) (T, error) {
	var zero T
	b, ok := s.raw[typeURL][name]
	if !ok {
		return zero, nil
	}
	m, err := xdsres.Unmarshal(typeURL, b)
	if err != nil {
		return zero, fmt.Errorf("xdsclient: %s %q: %w", typeURL, name, err)
	}
	return m.(T), nil
}

// newSnapshot builds a Snapshot from the store. The maps are copied; the
// bytes are shared (the store never mutates what it holds).
func newSnapshot(st *store) *Snapshot {
	s := &Snapshot{
		Versions:         map[string]string{},
		resourceVersions: map[string]map[string]string{},
		raw:              map[string]map[string][]byte{},
	}
	for url, ts := range st.types {
		s.Versions[url] = ts.version
		s.resourceVersions[url] = maps.Clone(ts.versions)
		s.raw[url] = maps.Clone(ts.raw)
	}
	s.MissingRoutes, s.MissingEndpoints = st.missing()
	return s
}
