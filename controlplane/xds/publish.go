package xds

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// publisher puts translations into the caches, changing only what changed,
// and keeps removed clusters and load assignments for a while (make before
// break). It is owned by the Server's Run goroutine.
type publisher struct {
	eds   *edsCache
	snaps cache.SnapshotCache
	delay time.Duration
	m     *metrics
	log   *slog.Logger

	// claVersions are the content hashes of the load assignments in eds,
	// and claPublished the assignments they hash: an assignment that is the
	// same value as last time is not hashed again.
	claVersions  map[string]string
	claPublished map[string]types.Resource
	// claLinger holds removed load assignments until they expire.
	claLinger map[string]lingering
	// snapVersions are each profile's listener, route and cluster versions,
	// and snapPublished the resources they hash: a profile whose resources
	// are the same values as last time is not hashed again.
	snapVersions  map[string][3]string
	snapPublished map[string][3][]types.Resource
	// clusters are each profile's last published clusters by name, and
	// clusterLinger the removed ones until they expire.
	clusters      map[string]map[string]types.Resource
	clusterLinger map[string]map[string]lingering
}

type lingering struct {
	res   types.Resource
	until time.Time
}

func newPublisher(eds *edsCache, snaps cache.SnapshotCache, delay time.Duration, m *metrics, log *slog.Logger) *publisher {
	return &publisher{
		eds: eds, snaps: snaps, delay: delay, m: m, log: log,
		claVersions:   make(map[string]string),
		claPublished:  make(map[string]types.Resource),
		snapPublished: make(map[string][3][]types.Resource),
		claLinger:     make(map[string]lingering),
		snapVersions:  make(map[string][3]string),
		clusters:      make(map[string]map[string]types.Resource),
		clusterLinger: make(map[string]map[string]lingering),
	}
}

// publish puts new and changed load assignments in the EDS cache, then each
// profile's listeners, routes and clusters, then removes expired load
// assignments, so that no client sees a cluster without its assignment. A
// cluster or assignment that disappeared is still served until now+delay,
// so routes move off it before it goes. results maps a profile to its
// translation; their load assignments are equal. It returns the next
// expiry, or zero.
func (p *publisher) publish(ctx context.Context, results map[string]*Resources, now time.Time) time.Time {
	var clas []types.Resource
	for _, res := range results {
		clas = res.Endpoints
		break
	}
	expired := p.updateEndpoints(clas, now)
	for _, profile := range sortedKeys(results) {
		res := *results[profile]
		res.Clusters = p.lingerClusters(profile, res.Clusters, now)
		if err := p.setSnapshot(ctx, profile, &res); err != nil {
			p.log.Error("set snapshot", "profile", profile, "err", err)
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
			v = hashResource(r)
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
	p.m.changedCLA.Add(float64(len(changed) + len(expired)))
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

// setSnapshot publishes a profile's listeners, routes and clusters with
// content-hash versions, unless none of them changed.
func (p *publisher) setSnapshot(ctx context.Context, profile string, res *Resources) error {
	groups := [3][]types.Resource{res.Listeners, res.Routes, res.Clusters}
	if last, ok := p.snapPublished[profile]; ok && sameResources(last, groups) {
		return nil
	}
	var versions [3]string
	for i, g := range groups {
		names := make([]string, len(g))
		hashes := make(map[string]string, len(g))
		for j, r := range g {
			names[j] = cache.GetResourceName(r)
			hashes[names[j]] = hashResource(r)
		}
		versions[i] = hashVersion(names, hashes)
	}
	if old, ok := p.snapVersions[profile]; ok && old == versions {
		p.snapPublished[profile] = groups
		return nil
	}
	snap := &cache.Snapshot{}
	snap.Resources[types.Listener] = cache.NewResources(versions[0], groups[0])
	snap.Resources[types.Route] = cache.NewResources(versions[1], groups[1])
	snap.Resources[types.Cluster] = cache.NewResources(versions[2], groups[2])
	if err := p.snaps.SetSnapshot(ctx, profile, snap); err != nil {
		return err
	}
	p.snapVersions[profile], p.snapPublished[profile] = versions, groups
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
