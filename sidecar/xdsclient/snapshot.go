package xdsclient

import (
	"maps"

	"github.com/shoal-mesh/shoal/sidecar/internal/xdswire"
)

// Type URLs of the resources the client subscribes to.
const (
	ListenerType = xdswire.ListenerType
	RouteType    = xdswire.RouteType
	ClusterType  = xdswire.ClusterType
	EndpointType = xdswire.EndpointType
)

// The resource types of a Snapshot: plain structs holding the subset of
// Envoy's v3 messages the sidecar reads, decoded from the wire without
// generated code (package sidecar/internal/xdswire).
type (
	// Resource is one of *Listener, *RouteConfiguration, *Cluster and
	// *ClusterLoadAssignment.
	Resource              = xdswire.Resource
	Listener              = xdswire.Listener
	RouteConfiguration    = xdswire.RouteConfiguration
	Cluster               = xdswire.Cluster
	ClusterLoadAssignment = xdswire.ClusterLoadAssignment
	// Node is the identity sent to the control plane; see NewNode.
	Node = xdswire.Node
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
	// state file.
	raw map[string]map[string][]byte
}

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
