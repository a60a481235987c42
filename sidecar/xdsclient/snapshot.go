package xdsclient

import (
	"maps"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

// Type URLs of the resources the client subscribes to.
const (
	ListenerType = resourcev3.ListenerType
	RouteType    = resourcev3.RouteType
	ClusterType  = resourcev3.ClusterType
	EndpointType = resourcev3.EndpointType
)

// Snapshot is one consistent view of the xDS configuration. A delivered
// Snapshot is immutable: its maps and messages are shared and must not be
// modified.
type Snapshot struct {
	Listeners map[string]*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	Clusters  map[string]*clusterv3.Cluster
	// Endpoints is keyed by the EDS service name (cluster_name of the CLA).
	Endpoints map[string]*endpointv3.ClusterLoadAssignment
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
}

// Complete reports whether every referenced route configuration and
// endpoint assignment is present.
func (s *Snapshot) Complete() bool {
	return len(s.MissingRoutes) == 0 && len(s.MissingEndpoints) == 0
}

// newSnapshot builds a Snapshot from the typed store. The maps are copied;
// the messages are shared (the store never mutates a message it holds).
func newSnapshot(st *store) *Snapshot {
	s := &Snapshot{
		Listeners:        typedMap[*listenerv3.Listener](st.types[ListenerType]),
		Routes:           typedMap[*routev3.RouteConfiguration](st.types[RouteType]),
		Clusters:         typedMap[*clusterv3.Cluster](st.types[ClusterType]),
		Endpoints:        typedMap[*endpointv3.ClusterLoadAssignment](st.types[EndpointType]),
		Versions:         map[string]string{},
		resourceVersions: map[string]map[string]string{},
	}
	for url, ts := range st.types {
		s.Versions[url] = ts.version
		s.resourceVersions[url] = maps.Clone(ts.versions)
	}
	s.MissingRoutes, s.MissingEndpoints = st.missing()
	return s
}

func typedMap[T proto.Message](ts *typeState) map[string]T {
	out := make(map[string]T, len(ts.resources))
	for name, m := range ts.resources {
		out[name] = m.(T)
	}
	return out
}

// messages returns the resources of one type of s as plain messages.
func (s *Snapshot) messages(typeURL string) map[string]proto.Message {
	out := map[string]proto.Message{}
	switch typeURL {
	case ListenerType:
		addAll(out, s.Listeners)
	case RouteType:
		addAll(out, s.Routes)
	case ClusterType:
		addAll(out, s.Clusters)
	case EndpointType:
		addAll(out, s.Endpoints)
	}
	return out
}

func addAll[T proto.Message](dst map[string]proto.Message, src map[string]T) {
	for k, v := range src {
		dst[k] = v
	}
}
