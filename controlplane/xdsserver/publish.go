package xdsserver

import (
	"log/slog"
	"slices"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/shoal-mesh/shoal/controlplane/xds"
)

// publisher puts translations into the caches, changing only what changed,
// and keeps removed clusters and load assignments for a while (make before
// break). It is owned by the Server's Run goroutine.
type publisher struct {
	eds      *resourceCache
	profiles *profileCaches
	delay    time.Duration
	m        *metrics
	log      *slog.Logger

	// claVersions are the content hashes of the load assignments in eds,
	// and claPublished the assignments they hash: an assignment that is the
	// same value as last time is not hashed again.
	claVersions  map[string]string
	claPublished map[string]types.Resource
	// claLinger holds removed load assignments until they expire.
	claLinger map[string]lingering
	// profilePublished are each profile's last published clusters,
	// listeners and routes: a profile whose resources are the same values
	// as last time is not looked at again.
	profilePublished map[string][3][]types.Resource
	// clusters are each profile's last published clusters by name, and
	// clusterLinger the removed ones until they expire.
	clusters      map[string]map[string]types.Resource
	clusterLinger map[string]map[string]lingering
}

type lingering struct {
	res   types.Resource
	until time.Time
}

func newPublisher(eds *resourceCache, profiles *profileCaches, delay time.Duration, m *metrics, log *slog.Logger) *publisher {
	return &publisher{
		eds: eds, profiles: profiles, delay: delay, m: m, log: log,
		claVersions:      make(map[string]string),
		claPublished:     make(map[string]types.Resource),
		profilePublished: make(map[string][3][]types.Resource),
		claLinger:        make(map[string]lingering),
		clusters:         make(map[string]map[string]types.Resource),
		clusterLinger:    make(map[string]map[string]lingering),
	}
}

// publish puts new and changed load assignments in the EDS cache, then each
// profile's clusters, listeners and routes, then removes expired load
// assignments, so that no client sees a cluster without its assignment. A
// cluster or assignment that disappeared is still served until now+delay,
// so routes move off it before it goes. results maps a profile to its
// translation; their load assignments are equal. It returns the next
// expiry, or zero.
func (p *publisher) publish(results map[string]*xds.Resources, now time.Time) time.Time {
	var clas []types.Resource
	for _, res := range results {
		clas = res.Endpoints
		break
	}
	expired := p.updateEndpoints(clas, now)
	for _, profile := range sortedKeys(results) {
		res := *results[profile]
		res.Clusters = p.lingerClusters(profile, res.Clusters, now)
		if err := p.setProfile(profile, &res); err != nil {
			p.log.Error("publish resources", "profile", profile, "err", err)
		}
	}
	if len(expired) > 0 {
		if err := p.eds.UpdateResources(nil, expired); err != nil {
			p.log.Error("remove endpoint assignments", "err", err)
		}
	}
	return p.nextExpiry()
}

// updateEndpoints puts new and changed load assignments in the EDS cache
// and returns the names of the removed ones whose delay is over.
func (p *publisher) updateEndpoints(clas []types.Resource, now time.Time) (expired []string) {
	changed := make(map[string]types.Resource)
	next := make(map[string]string, len(clas))
	present := make(map[string]types.Resource, len(clas))
	for _, r := range clas {
		name := cache.GetResourceName(r)
		v, ok := p.claVersions[name]
		if !ok || p.claPublished[name] != r {
			v = xds.HashResource(r)
		}
		next[name], present[name] = v, r
		delete(p.claLinger, name)
		if p.claVersions[name] != v {
			changed[name] = r
		}
	}
	for name, v := range p.claVersions {
		if _, ok := next[name]; !ok {
			if _, lingers := p.claLinger[name]; !lingers {
				p.claLinger[name] = lingering{until: now.Add(p.delay)}
			}
			next[name] = v // still in the cache
		}
	}
	for name, l := range p.claLinger {
		if !now.Before(l.until) {
			expired = append(expired, name)
			delete(p.claLinger, name)
			delete(next, name)
		}
	}
	slices.Sort(expired)
	p.claVersions, p.claPublished = next, present
	p.m.changedCLA.Add(uint64(len(changed) + len(expired)))
	if len(changed) > 0 {
		if err := p.eds.UpdateResources(changed, nil); err != nil {
			p.log.Error("update endpoint assignments", "err", err)
		}
	}
	return expired
}

// lingerClusters returns clusters plus the profile's removed clusters whose
// delay is not over, sorted by name.
func (p *publisher) lingerClusters(profile string, clusters []types.Resource, now time.Time) []types.Resource {
	linger := p.clusterLinger[profile]
	if linger == nil {
		linger = make(map[string]lingering)
		p.clusterLinger[profile] = linger
	}
	cur := make(map[string]types.Resource, len(clusters))
	for _, c := range clusters {
		name := cache.GetResourceName(c)
		cur[name] = c
		delete(linger, name)
	}
	for name, c := range p.clusters[profile] {
		if _, ok := cur[name]; !ok {
			if _, lingers := linger[name]; !lingers {
				linger[name] = lingering{res: c, until: now.Add(p.delay)}
			}
		}
	}
	p.clusters[profile] = cur
	out := slices.Clone(clusters)
	for name, l := range linger {
		if !now.Before(l.until) {
			delete(linger, name)
			continue
		}
		out = append(out, l.res)
	}
	sortByName(out)
	return out
}

// nextExpiry is when the next lingering resource goes, or zero.
func (p *publisher) nextExpiry() time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, l := range p.claLinger {
		consider(l.until)
	}
	for _, m := range p.clusterLinger {
		for _, l := range m {
			consider(l.until)
		}
	}
	return next
}

// setProfile publishes a profile's clusters, listeners and routes, in that
// order (the xDS protocol's advice for ADS: clusters before the routes
// that name them), unless none of them is a new value. Each cache versions
// its type with a hash of its content.
func (p *publisher) setProfile(profile string, res *xds.Resources) error {
	groups := [3][]types.Resource{res.Clusters, res.Listeners, res.Routes}
	if last, ok := p.profilePublished[profile]; ok && sameResources(last, groups) {
		return nil
	}
	for i, typ := range [3]string{resource.ClusterType, resource.ListenerType, resource.RouteType} {
		if err := p.profiles.set(profile, typ, groups[i]); err != nil {
			return err
		}
	}
	p.profilePublished[profile] = groups
	return nil
}

// sameResources reports whether a and b hold the same values (pointers)
// in the same order.
func sameResources(a, b [3][]types.Resource) bool {
	for i := range a {
		if !slices.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
