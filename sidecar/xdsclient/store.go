package xdsclient

import (
	"bytes"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-mesh/shoal/sidecar/internal/xdsres"
)

// wildcard is the explicit wildcard resource name of the xDS protocol.
const wildcard = "*"

// types lists the subscribed types in subscription order: listeners and
// clusters first, then what they reference.
var subscribedTypes = []string{ListenerType, ClusterType, RouteType, EndpointType}

// typeState holds the accepted resources of one type: their wire form and
// what they reference, not their decoded messages.
type typeState struct {
	// refs holds, for each accepted resource by name, the names it makes
	// the client subscribe to: a listener's RDS route configurations, an EDS
	// cluster's service name (see refsOf). Never mutated in place.
	refs map[string][]string
	// versions are the per-resource versions by name, raw their wire form.
	versions map[string]string
	raw      map[string][]byte
	// version is the type's last accepted version_info.
	version string
	// synced is set once a response of this type was accepted in this run.
	synced bool
}

// store holds the last good resources of every type. It is not safe for
// concurrent use: the Run goroutine owns it.
type store struct {
	types map[string]*typeState
	// listeners is Config.Listeners; empty means wildcard.
	listeners []string
	// gen counts changes; deliveries remember the generation they carried.
	gen int64
}

func newStore(listeners []string) *store {
	st := &store{types: map[string]*typeState{}, listeners: listeners}
	for _, t := range subscribedTypes {
		st.types[t] = &typeState{refs: map[string][]string{}, versions: map[string]string{}, raw: map[string][]byte{}}
	}
	return st
}

// apply merges u into the store and reports whether any resource changed.
// Resources equal to the held ones do not count as changes, so a SotW
// re-send after a reconnect does not cause a new delivery.
func (st *store) apply(u *update) bool {
	ts := st.types[u.typeURL]
	changed := false
	remove := slices.Clone(u.removed)
	if u.full {
		for name := range ts.raw {
			if _, ok := u.upserts[name]; !ok {
				remove = append(remove, name)
			}
		}
	}
	for _, name := range remove {
		if _, ok := ts.raw[name]; ok {
			delete(ts.refs, name)
			delete(ts.versions, name)
			delete(ts.raw, name)
			changed = true
		}
	}
	for name, m := range u.upserts {
		if old, ok := ts.raw[name]; !ok || !sameResource(u.typeURL, old, u.raw[name], m) {
			changed = true
		}
		ts.refs[name] = refsOf(m)
		ts.raw[name] = u.raw[name]
		ts.versions[name] = u.versions[name]
	}
	ts.version = u.version
	if changed {
		st.gen++
	}
	return changed
}

// wanted returns the names to subscribe to for typeURL; wildcard is
// represented by the single name "*".
func (st *store) wanted(typeURL string) map[string]bool {
	set := map[string]bool{}
	switch typeURL {
	case ListenerType:
		if len(st.listeners) == 0 {
			set[wildcard] = true
		}
		for _, n := range st.listeners {
			set[n] = true
		}
	case ClusterType:
		set[wildcard] = true
	case RouteType, EndpointType:
		from := ListenerType
		if typeURL == EndpointType {
			from = ClusterType
		}
		for _, names := range st.types[from].refs {
			for _, n := range names {
				set[n] = true
			}
		}
	}
	return set
}

// prune drops held resources of typeURL that are no longer wanted (a route
// configuration or assignment nothing references any more).
func (st *store) prune(typeURL string, want map[string]bool) {
	if want[wildcard] {
		return
	}
	ts := st.types[typeURL]
	for name := range ts.raw {
		if !want[name] {
			delete(ts.refs, name)
			delete(ts.versions, name)
			delete(ts.raw, name)
			st.gen++
		}
	}
}

// missing returns the referenced route configurations and endpoint
// assignments that are not held, sorted.
func (st *store) missing() (routes, endpoints []string) {
	return st.absent(RouteType), st.absent(EndpointType)
}

func (st *store) absent(typeURL string) []string {
	var out []string
	for name := range st.wanted(typeURL) {
		if _, ok := st.types[typeURL].raw[name]; !ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// held returns the per-resource versions held for typeURL among want (all
// of them for a wildcard), for delta initial_resource_versions.
func (st *store) held(typeURL string, want map[string]bool) map[string]string {
	vs := maps.Clone(st.types[typeURL].versions)
	if !want[wildcard] {
		maps.DeleteFunc(vs, func(name, _ string) bool { return !want[name] })
	}
	return vs
}

// synced reports whether listeners and clusters were both received.
func (st *store) synced() bool {
	return st.types[ListenerType].synced && st.types[ClusterType].synced
}

// sameResource reports whether a resource is unchanged: the same wire
// bytes, or (encoders may order map entries differently) the same decoded
// fields; only then is the held one decoded again.
func sameResource(typeURL string, oldRaw, newRaw []byte, m Resource) bool {
	if bytes.Equal(oldRaw, newRaw) {
		return true
	}
	old, err := xdsres.Unmarshal(typeURL, oldRaw)
	return err == nil && proto.Equal(old, m)
}

// refsOf returns the names a resource makes the client subscribe to: the
// route configurations of a listener, the EDS service name of a cluster.
func refsOf(m Resource) []string {
	switch m := m.(type) {
	case *Listener:
		return routeNames(m)
	case *Cluster:
		if n := edsName(m); n != "" {
			return []string{n}
		}
	}
	return nil
}
