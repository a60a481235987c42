package xdsclient

import (
	"maps"

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

// Snapshot is one consistent view of the xDS configuration. A delivered
// Snapshot is immutable: its maps and resources are shared and must not be
// modified.
type Snapshot struct {
	Listeners map[string]*Listener
	Routes    map[string]*RouteConfiguration
	Clusters  map[string]*Cluster
	// Endpoints is keyed by the EDS service name (cluster_name of the CLA).
	Endpoints map[string]*ClusterLoadAssignment
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
	// raw holds each resource's wire form by type URL and name, for the
	// state file and /config_dump.
	raw map[string]map[string][]byte
}

// Raw returns the wire form of the resources of typeURL by name, as
// received. The map and the bytes are shared and must not be modified.
func (s *Snapshot) Raw(typeURL string) map[string][]byte { return s.raw[typeURL] }

// Complete reports whether every referenced route configuration and
// endpoint assignment is present.
func (s *Snapshot) Complete() bool {
	return len(s.MissingRoutes) == 0 && len(s.MissingEndpoints) == 0
}

// newSnapshot builds a Snapshot from the typed store. The maps are copied;
// the resources are shared (the store never mutates a resource it holds).
func newSnapshot(st *store) *Snapshot {
	s := &Snapshot{
		Listeners:        typedMap[*Listener](st.types[ListenerType]),
		Routes:           typedMap[*RouteConfiguration](st.types[RouteType]),
		Clusters:         typedMap[*Cluster](st.types[ClusterType]),
		Endpoints:        typedMap[*ClusterLoadAssignment](st.types[EndpointType]),
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

func typedMap[T Resource](ts *typeState) map[string]T {
	out := make(map[string]T, len(ts.resources))
	for name, m := range ts.resources {
		out[name] = m.(T)
	}
	return out
}
