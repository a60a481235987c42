package xdsserver

import (
	"context"
	"errors"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

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
}

var _ cache.Cache = (*profileCaches)(nil)

// profileTypes are the types profileCaches serves.
var profileTypes = []string{resource.ClusterType, resource.ListenerType, resource.RouteType}

func newProfileCaches(profiles []xds.Capabilities) *profileCaches {
	p := &profileCaches{byProfile: make(map[string]map[string]*resourceCache, len(profiles))}
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

// cacheFor returns the cache for a client's node and a type URL. A type
// the caches do not serve gets a new empty cache of its own, the state
// go-control-plane's SnapshotCache had for it: version "", no resources.
func (p *profileCaches) cacheFor(node *corev3.Node, typeURL string) *resourceCache {
	if c := p.cache(xds.CapabilitiesFor(node).Profile, typeURL); c != nil {
		return c
	}
	return newResourceCache(typeURL, true)
}

// CreateWatch implements cache.ConfigWatcher for SotW.
func (p *profileCaches) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	return p.cacheFor(req.GetNode(), req.GetTypeUrl()).CreateWatch(req, sub, ch)
}

// CreateDeltaWatch implements cache.ConfigWatcher for delta.
func (p *profileCaches) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, ch chan cache.DeltaResponse) (func(), error) {
	return p.cacheFor(req.GetNode(), req.GetTypeUrl()).CreateDeltaWatch(req, sub, ch)
}

// Fetch implements cache.ConfigFetcher; REST is not served.
func (p *profileCaches) Fetch(context.Context, *cache.Request) (cache.Response, error) {
	return nil, errors.New("xds: fetch is not implemented")
}
