package xdsserver

import (
	"context"
	"errors"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/controlplane/xds"
)

// profileCaches serves listeners, routes and clusters: one full-state
// resourceCache per capability profile and type, chosen by the client's
// node (xds.CapabilitiesFor). Clients of one profile share every marshaled
// resource and every response computed for a version.
type profileCaches struct {
	// byProfile maps a profile and a type URL to its cache. It is filled by
	// newProfileCaches and read only after.
	byProfile map[string]map[string]*resourceCache
	// onDrop is given to the role variants' caches (see resourceCache);
	// set before the first watch.
	onDrop func()

	// mu guards variants and listeners.
	mu sync.Mutex
	// variants are the listener caches of nodes that ask for a role
	// (roles.go), by profile and role key, created on first use and kept
	// up to date by set.
	variants map[string]roleVariant
	// listeners are each profile's last published listeners, from which a
	// new variant starts.
	listeners map[string][]types.Resource
}

// roleVariant is the listener cache of a profile's nodes with one role.
type roleVariant struct {
	profile string
	role    xds.NodeRole
	cache   *resourceCache
}

var _ cache.Cache = (*profileCaches)(nil)

// profileTypes are the types profileCaches serves.
var profileTypes = []string{resource.ClusterType, resource.ListenerType, resource.RouteType}

func newProfileCaches(profiles []xds.Capabilities) *profileCaches {
	p := &profileCaches{
		byProfile: make(map[string]map[string]*resourceCache, len(profiles)),
		variants:  map[string]roleVariant{},
		listeners: map[string][]types.Resource{},
	}
	for _, caps := range profiles {
		byType := make(map[string]*resourceCache, len(profileTypes))
		for _, t := range profileTypes {
			byType[t] = newResourceCache(t, true)
		}
		p.byProfile[caps.Profile] = byType
	}
	return p
}

// cache returns the cache of a profile and type, nil if there is none.
func (p *profileCaches) cache(profile, typeURL string) *resourceCache {
	return p.byProfile[profile][typeURL]
}

// set publishes rs as a profile's resources of one type; listeners also go,
// rewritten, to the profile's role variants.
func (p *profileCaches) set(profile, typeURL string, rs []types.Resource) error {
	if err := p.cache(profile, typeURL).setResources(rs); err != nil {
		return err
	}
	if typeURL != resource.ListenerType {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listeners[profile] = rs
	for _, v := range p.variants {
		if v.profile == profile {
			if err := v.cache.setResources(v.role.Listeners(rs)); err != nil {
				return err
			}
		}
	}
	return nil
}

// cacheFor returns the cache for a client's node and a type URL. A type
// the caches do not serve gets a new empty cache of its own, the state
// go-control-plane's SnapshotCache had for it: version "", no resources.
// A node asking for a role (node metadata, roles.go) gets its role's
// listeners.
func (p *profileCaches) cacheFor(node *corev3.Node, typeURL string) (*resourceCache, error) {
	profile := xds.CapabilitiesFor(node).Profile
	c := p.cache(profile, typeURL)
	if c == nil {
		return newResourceCache(typeURL, true), nil
	}
	if typeURL != resource.ListenerType {
		return c, nil
	}
	role, err := xds.RoleOf(node)
	if err != nil || role.Role == "" {
		return c, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	key := profile + "|" + role.Key()
	if v, ok := p.variants[key]; ok {
		return v.cache, nil
	}
	v := roleVariant{profile: profile, role: role, cache: newResourceCache(typeURL, true)}
	v.cache.onDrop = p.onDrop
	if rs, ok := p.listeners[profile]; ok {
		// Not published before the first full state, like the profile's.
		if err := v.cache.setResources(role.Listeners(rs)); err != nil {
			return nil, err
		}
	}
	p.variants[key] = v
	return v.cache, nil
}

// CreateWatch implements cache.ConfigWatcher for SotW.
func (p *profileCaches) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	c, err := p.cacheFor(req.GetNode(), req.GetTypeUrl())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "xds: "+err.Error())
	}
	return c.CreateWatch(req, sub, ch)
}

// CreateDeltaWatch implements cache.ConfigWatcher for delta.
func (p *profileCaches) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, ch chan cache.DeltaResponse) (func(), error) {
	c, err := p.cacheFor(req.GetNode(), req.GetTypeUrl())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "xds: "+err.Error())
	}
	return c.CreateDeltaWatch(req, sub, ch)
}

// Fetch implements cache.ConfigFetcher; REST is not served.
func (p *profileCaches) Fetch(context.Context, *cache.Request) (cache.Response, error) {
	return nil, errors.New("xds: fetch is not implemented")
}
