package xdsserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// resourceCache serves the resources of one type to the go-control-plane
// SotW and delta servers: the ClusterLoadAssignments, the same for every
// client, and each capability profile's listeners, routes and clusters
// (profileCaches). It replaces go-control-plane's LinearCache (EDS), which
// on every update compared every load assignment's version for every watch
// under its lock, and its SnapshotCache (the other types), which kept a map
// of every resource name per client and type and marshaled every resource
// again for each client's response (issue 7).
//
// Each resource is marshaled once, when it changes; every response shares
// the marshaled bytes. The cache numbers its states (version, +1 per
// update) and logs which names changed at which version. What a client
// holds is kept, as go-control-plane expects, in the subscription's
// returned-resources map, which the server hands back with every watch:
//
//   - wildcard subscriptions: one entry, seenKey → the cache version whose
//     state the client holds for every name (SotW of a full-state cache:
//     sotwSeenKey → the label it was sent); a watch finds what to send in
//     the change log, O(changed), and clients at the same version share one
//     computed response;
//   - explicit names (and entries the server adds, such as "" for a name a
//     wildcard delta client unsubscribed): name → content hash of what the
//     client holds (the delta resource version), "" for unknown; SotW of a
//     full-state cache: name → the label it was sent.
//
// A watch whose client is behind is answered at once; others are parked
// and answered by the next update that touches them. Responses are sent
// after the cache lock is released, under the watch's own lock, which
// cancel takes too, so nothing is sent on a channel after its watch was
// cancelled (the delta server closes its channel after cancelling).
//
// Delta responses carry the changed resources, with content hashes as
// resource versions (cache.HashResource, as go-control-plane's caches).
// SotW depends on the type:
//
//   - EDS is not a full-state type: SotW responses carry only the changed
//     assignments, as with the LinearCache. Versions are "eds-<n>" here and
//     replaced by a content hash in callbacks before sending.
//   - full-state caches (listeners, routes, clusters) answer a SotW watch,
//     as the SnapshotCache did, whenever the request's version is not the
//     current label (a hash of every resource's name and content hash,
//     hashVersion) or the client lacks a resource it subscribes to, with
//     every resource (wildcard) or every subscribed one.
type resourceCache struct {
	typeURL string
	// fullState selects the SotW behaviour of listeners, routes and
	// clusters (see the type comment); false is EDS's.
	fullState bool
	// onDrop, when set, counts a response no stream took (pendingSend.send).
	// Set before the cache is used.
	onDrop func()

	mu sync.Mutex
	// version is the number of the current state; 0 before any update.
	version uint64
	// label is the current state's version as clients see it.
	label     string
	resources map[string]*cacheEntry
	// removed holds when each removed name was removed, so that delta
	// clients behind it are told.
	removed map[string]uint64
	// changes are the names changed (updated or removed) at each version,
	// in version order; every change after floor is in it.
	changes     []cacheChange
	changeNames int
	floor       uint64
	// all is every resource, sorted by name: what every wildcard SotW
	// client of a full-state cache is sent. Built on first use after each
	// update; read only.
	all []*anypb.Any

	// wildcard and byName hold the parked watches: wildcard and named
	// subscriptions (for a full-state cache, delta ones only).
	wildcard map[*cacheWatch]struct{}
	byName   map[string]map[*cacheWatch]struct{}
	// sotw holds a full-state cache's parked SotW watches: each is
	// answered by the next update.
	sotw map[*cacheWatch]struct{}
}

type cacheEntry struct {
	changed uint64         // version of the last change
	res     types.Resource // what was marshaled, to skip it when given again
	hash    string         // cache.HashResource of the marshaled resource
	any     *anypb.Any
	delta   *discoveryv3.Resource
}

type cacheChange struct {
	version uint64
	names   []string
}

// seenKey is the returned-resources entry of a wildcard subscription: the
// cache version the client holds. sotwSeenKey is the one of a full-state
// cache's wildcard SotW subscription: the label it was sent. Neither can
// be a resource name (names are service names, see names.go).
const (
	seenKey     = "\x00seen"
	sotwSeenKey = "\x00label"
)

var _ cache.Cache = (*resourceCache)(nil)

// newResourceCache returns an empty cache for typeURL; fullState selects
// the SotW behaviour of listeners, routes and clusters.
func newResourceCache(typeURL string, fullState bool) *resourceCache {
	c := &resourceCache{
		typeURL:   typeURL,
		fullState: fullState,
		resources: make(map[string]*cacheEntry),
		removed:   make(map[string]uint64),
		wildcard:  make(map[*cacheWatch]struct{}),
		byName:    make(map[string]map[*cacheWatch]struct{}),
	}
	if fullState {
		c.sotw = make(map[*cacheWatch]struct{})
	} else {
		c.label = edsVersionPrefix + "0"
	}
	return c
}

// newEDSCache returns the cache of the load assignments.
func newEDSCache() *resourceCache { return newResourceCache(resource.EndpointType, false) }

// preparedEntry is a marshaled resource about to enter the cache.
type preparedEntry struct {
	name string
	e    *cacheEntry
}

func (c *resourceCache) prepare(name string, r types.Resource) (preparedEntry, error) {
	if r == nil {
		return preparedEntry{}, fmt.Errorf("xds cache: nil resource %q", name)
	}
	b, err := cache.MarshalResource(r)
	if err != nil {
		return preparedEntry{}, fmt.Errorf("xds cache: marshal %q: %w", name, err)
	}
	a := &anypb.Any{TypeUrl: c.typeURL, Value: b}
	h := cache.HashResource(b)
	return preparedEntry{name, &cacheEntry{res: r, hash: h, any: a, delta: &discoveryv3.Resource{Name: name, Version: h, Resource: a}}}, nil
}

// UpdateResources sets toUpdate and removes toDelete, then answers the
// parked watches the change concerns. It is how the EDS cache is fed.
func (c *resourceCache) UpdateResources(toUpdate map[string]types.Resource, toDelete []string) error {
	// Marshal and hash outside the lock.
	prep := make([]preparedEntry, 0, len(toUpdate))
	for name, r := range toUpdate {
		p, err := c.prepare(name, r)
		if err != nil {
			return err
		}
		prep = append(prep, p)
	}
	c.apply(prep, toDelete, "")
	return nil
}

// setResources makes rs, sorted by name, the cache's whole state: what is
// not in rs is removed, and only resources that are new values are
// marshaled (a resource given again as the same value is not). The label
// is hashVersion of the names and content hashes. It is how full-state
// caches are fed, by one goroutine at a time.
func (c *resourceCache) setResources(rs []types.Resource) error {
	c.mu.Lock()
	old := make([]*cacheEntry, len(rs))
	for i, r := range rs {
		old[i] = c.resources[cache.GetResourceName(r)]
	}
	c.mu.Unlock()
	var prep []preparedEntry
	var same []int // new values of unchanged content
	names := make([]string, len(rs))
	hashes := make(map[string]string, len(rs))
	for i, r := range rs {
		names[i] = cache.GetResourceName(r)
		e := old[i]
		if e == nil || e.res != r {
			p, err := c.prepare(names[i], r)
			if err != nil {
				return err
			}
			if e == nil || e.hash != p.e.hash {
				prep = append(prep, p)
				e = p.e
			} else {
				same = append(same, i)
			}
		}
		// xds.HashResource's content hash is the first 8 bytes of the same
		// SHA-256, so labels stay the versions the SnapshotCache sent.
		hashes[names[i]] = e.hash[:16]
	}
	c.mu.Lock()
	for _, i := range same {
		old[i].res = rs[i]
	}
	var toDelete []string
	for name := range c.resources {
		if _, ok := hashes[name]; !ok {
			toDelete = append(toDelete, name)
		}
	}
	c.mu.Unlock()
	c.apply(prep, toDelete, hashVersion(names, hashes))
	return nil
}

// apply puts prep in the cache and removes toDelete as one new version
// labelled label ("eds-<n>" if empty), unless that changes nothing, and
// answers the parked watches concerned.
func (c *resourceCache) apply(prep []preparedEntry, toDelete []string, label string) {
	c.mu.Lock()
	names := make([]string, 0, len(prep)+len(toDelete))
	next := c.version + 1
	for _, p := range prep {
		p.e.changed = next
		c.resources[p.name] = p.e
		delete(c.removed, p.name)
		names = append(names, p.name)
	}
	for _, name := range toDelete {
		if _, ok := c.resources[name]; !ok {
			continue
		}
		delete(c.resources, name)
		c.removed[name] = next
		names = append(names, name)
	}
	// A full-state cache's first state may be empty: it is a state all
	// the same, which SotW clients are sent.
	if len(names) == 0 && (label == "" || label == c.label) {
		c.mu.Unlock()
		return
	}
	c.version, c.all = next, nil
	c.label = label
	if label == "" {
		c.label = edsVersionPrefix + strconv.FormatUint(next, 10)
	}
	slices.Sort(names)
	c.appendChange(cacheChange{version: next, names: names})
	sends := c.notify(names)
	c.mu.Unlock()

	for _, s := range sends {
		c.sent(s)
	}
}

// sent sends s and counts a drop.
func (c *resourceCache) sent(s pendingSend) {
	if !s.send() && c.onDrop != nil {
		c.onDrop()
	}
}

// appendChange logs a change and drops the oldest entries once the log
// holds many more names than the cache: a client behind the floor gets a
// full comparison instead.
func (c *resourceCache) appendChange(ch cacheChange) {
	c.changes = append(c.changes, ch)
	c.changeNames += len(ch.names)
	limit := max(4096, 2*len(c.resources))
	if c.changeNames <= limit {
		return
	}
	drop := 0
	for drop < len(c.changes)-1 && c.changeNames > limit/2 {
		c.changeNames -= len(c.changes[drop].names)
		c.floor = c.changes[drop].version
		drop++
	}
	c.changes = append([]cacheChange(nil), c.changes[drop:]...)
}

// changedSince returns the names changed after version v, sorted.
func (c *resourceCache) changedSince(v uint64) []string {
	if v >= c.version {
		return nil
	}
	set := make(map[string]struct{})
	if v < c.floor {
		for name, e := range c.resources {
			if e.changed > v {
				set[name] = struct{}{}
			}
		}
		for name, at := range c.removed {
			if at > v {
				set[name] = struct{}{}
			}
		}
	} else {
		i := sort.Search(len(c.changes), func(i int) bool { return c.changes[i].version > v })
		if i == len(c.changes)-1 {
			return c.changes[i].names // already sorted; read only
		}
		for _, ch := range c.changes[i:] {
			for _, n := range ch.names {
				set[n] = struct{}{}
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// notify answers the parked watches concerned by names, removing them from
// the cache; it returns the sends to do once the lock is released. Called
// with c.mu held.
func (c *resourceCache) notify(names []string) []pendingSend {
	var sends []pendingSend
	for w := range c.sotw {
		if s := c.computeFull(w); s.w != nil {
			sends = append(sends, s)
			delete(c.sotw, w)
		}
	}
	memo := make(map[uint64]*shared)
	for w := range c.wildcard {
		if s, ok := c.respondFast(w, memo); ok {
			if s.w != nil {
				sends = append(sends, s)
				delete(c.wildcard, w)
			}
			continue
		}
		if s := c.compute(w, false); s.w != nil {
			sends = append(sends, s)
			delete(c.wildcard, w)
		}
	}
	seen := make(map[*cacheWatch]struct{})
	for _, n := range names {
		for w := range c.byName[n] {
			if _, ok := seen[w]; ok {
				continue
			}
			seen[w] = struct{}{}
			if s := c.compute(w, false); s.w != nil {
				sends = append(sends, s)
				c.untrack(w)
			}
		}
	}
	return sends
}

// track parks w. Called with c.mu held.
func (c *resourceCache) track(w *cacheWatch) {
	switch {
	case c.fullState && !w.isDelta():
		c.sotw[w] = struct{}{}
	case w.sub.IsWildcard():
		c.wildcard[w] = struct{}{}
	default:
		for n := range w.sub.SubscribedResources() {
			ws := c.byName[n]
			if ws == nil {
				ws = make(map[*cacheWatch]struct{})
				c.byName[n] = ws
			}
			ws[w] = struct{}{}
		}
	}
}

// untrack removes a parked w. Called with c.mu held.
func (c *resourceCache) untrack(w *cacheWatch) {
	switch {
	case c.fullState && !w.isDelta():
		delete(c.sotw, w)
	case w.sub.IsWildcard():
		delete(c.wildcard, w)
	default:
		for n := range w.sub.SubscribedResources() {
			if ws := c.byName[n]; ws != nil {
				delete(ws, w)
				if len(ws) == 0 {
					delete(c.byName, n)
				}
			}
		}
	}
}

func (c *resourceCache) cancel(w *cacheWatch) {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
	c.mu.Lock()
	c.untrack(w)
	c.mu.Unlock()
}

// Fetch implements cache.ConfigFetcher; REST is not served.
func (c *resourceCache) Fetch(context.Context, *cache.Request) (cache.Response, error) {
	return nil, errors.New("xds cache: fetch is not implemented")
}
