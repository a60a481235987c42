package xds

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// edsCache serves the ClusterLoadAssignments, the same for every client,
// to the go-control-plane SotW and delta servers. It replaces
// go-control-plane's LinearCache, which on every update compared every
// load assignment's version for every watch under its lock, and again when
// each client re-created its watch after an ACK, and kept a version map of
// every assignment per client (issue 7).
//
// The cache numbers its states (version, +1 per update) and logs which
// names changed at which version. What a client holds is kept, as
// go-control-plane expects, in the subscription's returned-resources map,
// which the server hands back with every watch:
//
//   - wildcard subscriptions: one entry, seenKey → the cache version whose
//     state the client holds for every name; a watch finds what to send in
//     the change log, O(changed), and clients at the same version share one
//     computed response;
//   - explicit names (and entries the server adds, such as "" for a name a
//     wildcard delta client unsubscribed): name → content hash of what the
//     client holds (the delta resource version), "" for unknown.
//
// A watch whose client is behind is answered at once; others are parked
// and answered by the next update that touches them. Responses are sent
// after the cache lock is released, under the watch's own lock, which
// cancel takes too, so nothing is sent on a channel after its watch was
// cancelled (the delta server closes its channel after cancelling).
//
// EDS is not a full-state type: SotW responses carry only the changed
// assignments, as with the LinearCache. SotW response versions are
// "eds-<n>" here and replaced by a content hash in callbacks before
// sending; delta resource versions are content hashes
// (cache.HashResource, as the LinearCache's).
type edsCache struct {
	typeURL string

	mu sync.Mutex
	// version is the number of the current state; 0 before any update.
	version   uint64
	resources map[string]*edsEntry
	// removed holds when each removed name was removed, so that delta
	// clients behind it are told.
	removed map[string]uint64
	// changes are the names changed (updated or removed) at each version,
	// in version order; every change after floor is in it.
	changes     []edsChange
	changeNames int
	floor       uint64

	wildcard map[*edsWatch]struct{}
	byName   map[string]map[*edsWatch]struct{}
}

type edsEntry struct {
	changed uint64 // version of the last change
	hash    string // cache.HashResource of the marshaled assignment
	any     *anypb.Any
	delta   *discoveryv3.Resource
}

type edsChange struct {
	version uint64
	names   []string
}

// seenKey is the returned-resources entry of a wildcard subscription: the
// cache version the client holds. It cannot be a resource name (names are
// service names, see names.go).
const seenKey = "\x00seen"

var _ cache.Cache = (*edsCache)(nil)

func newEDSCache(typeURL string) *edsCache {
	return &edsCache{
		typeURL:   typeURL,
		resources: make(map[string]*edsEntry),
		removed:   make(map[string]uint64),
		wildcard:  make(map[*edsWatch]struct{}),
		byName:    make(map[string]map[*edsWatch]struct{}),
	}
}

// edsWatch is one parked watch, SotW (ch) or delta (dch).
type edsWatch struct {
	req  *cache.Request
	dreq *cache.DeltaRequest
	sub  cache.Subscription
	ch   chan cache.Response
	dch  chan cache.DeltaResponse

	// mu orders the send with cancel; done is set by either.
	mu   sync.Mutex
	done bool
}

func (w *edsWatch) isDelta() bool { return w.dch != nil }

// UpdateResources sets toUpdate and removes toDelete, then answers the
// parked watches the change concerns.
func (c *edsCache) UpdateResources(toUpdate map[string]types.Resource, toDelete []string) error {
	type prepared struct {
		name string
		e    *edsEntry
	}
	// Marshal and hash outside the lock.
	prep := make([]prepared, 0, len(toUpdate))
	for name, r := range toUpdate {
		if r == nil {
			return fmt.Errorf("eds: nil resource %q", name)
		}
		b, err := cache.MarshalResource(r)
		if err != nil {
			return fmt.Errorf("eds: marshal %q: %w", name, err)
		}
		a := &anypb.Any{TypeUrl: c.typeURL, Value: b}
		h := cache.HashResource(b)
		prep = append(prep, prepared{name, &edsEntry{hash: h, any: a, delta: &discoveryv3.Resource{Name: name, Version: h, Resource: a}}})
	}

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
	if len(names) == 0 {
		c.mu.Unlock()
		return nil
	}
	c.version = next
	slices.Sort(names)
	c.appendChange(edsChange{version: next, names: names})
	sends := c.notify(names)
	c.mu.Unlock()

	for _, s := range sends {
		s.send()
	}
	return nil
}

// appendChange logs a change and drops the oldest entries once the log
// holds many more names than the cache: a client behind the floor gets a
// full comparison instead.
func (c *edsCache) appendChange(ch edsChange) {
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
	c.changes = append([]edsChange(nil), c.changes[drop:]...)
}

// changedSince returns the names changed after version v, sorted.
func (c *edsCache) changedSince(v uint64) []string {
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

// pendingSend is a response computed under the cache lock, sent after it.
type pendingSend struct {
	w    *edsWatch
	resp cache.Response
	dres cache.DeltaResponse
}

func (s pendingSend) send() {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.w.done {
		return
	}
	s.w.done = true
	// The server's channels hold one response per type and a watch gets at
	// most one, so these never block; the default is a safety net.
	if s.dres != nil {
		select {
		case s.w.dch <- s.dres:
		default:
		}
		return
	}
	select {
	case s.w.ch <- s.resp:
	default:
	}
}

// shared is what clients at one version are sent, computed once per update.
type shared struct {
	any     []*anypb.Any
	delta   []*discoveryv3.Resource
	removed []string
}

// sharedSince computes what a wildcard client at version v lacks.
func (c *edsCache) sharedSince(v uint64) *shared {
	s := &shared{}
	for _, n := range c.changedSince(v) {
		if e, ok := c.resources[n]; ok {
			s.any = append(s.any, e.any)
			s.delta = append(s.delta, e.delta)
		} else {
			s.removed = append(s.removed, n)
		}
	}
	return s
}

// notify answers the parked watches concerned by names, removing them from
// the cache; it returns the sends to do once the lock is released. Called
// with c.mu held.
func (c *edsCache) notify(names []string) []pendingSend {
	var sends []pendingSend
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
	seen := make(map[*edsWatch]struct{})
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

// knownVersion returns the seenKey version of a subscription whose
// returned resources hold nothing else.
func compactVersion(known map[string]string) (uint64, bool) {
	if len(known) != 1 {
		return 0, false
	}
	s, ok := known[seenKey]
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// respondFast answers a wildcard watch whose client holds one cache
// version from the responses shared by every client at that version. ok is
// false if the watch needs compute.
func (c *edsCache) respondFast(w *edsWatch, memo map[uint64]*shared) (pendingSend, bool) {
	if !w.sub.IsWildcard() {
		return pendingSend{}, false
	}
	v, ok := compactVersion(w.sub.ReturnedResources())
	if !ok || v > c.version {
		return pendingSend{}, false
	}
	s, ok := memo[v]
	if !ok {
		s = c.sharedSince(v)
		memo[v] = s
	}
	if w.isDelta() {
		if len(s.delta) == 0 && len(s.removed) == 0 {
			return pendingSend{}, true
		}
		return pendingSend{w: w, dres: c.deltaResponse(w, s.delta, s.removed, c.compactReturned())}, true
	}
	if len(s.any) == 0 {
		return pendingSend{}, true
	}
	return pendingSend{w: w, resp: c.sotwResponse(w, s.any, c.compactReturned())}, true
}

func (c *edsCache) compactReturned() map[string]string {
	return map[string]string{seenKey: strconv.FormatUint(c.version, 10)}
}

// compute works out what w's client lacks, in general: sent is the
// response to send, with a nil w if there is nothing to send. Called with
// c.mu held.
func (c *edsCache) compute(w *edsWatch, replyEvenIfEmpty bool) pendingSend {
	sub := w.sub
	known := sub.ReturnedResources()
	seen, hasSeen := uint64(0), false
	if s, ok := known[seenKey]; ok {
		if v, err := strconv.ParseUint(s, 10, 64); err == nil && v <= c.version {
			seen, hasSeen = v, true
		}
	}
	var send []string
	var removed []string
	// check decides name n, which the client holds per known/seen.
	check := func(n string) {
		e, present := c.resources[n]
		if kv, ok := known[n]; ok {
			switch {
			case !present:
				removed = append(removed, n)
			case kv != e.hash:
				send = append(send, n)
			}
			return
		}
		if hasSeen {
			switch {
			case present && e.changed > seen:
				send = append(send, n)
			case !present && c.removed[n] > seen:
				removed = append(removed, n)
			}
			return
		}
		if present {
			send = append(send, n)
		}
	}
	var returned map[string]string
	if sub.IsWildcard() {
		if hasSeen {
			for _, n := range c.changedSince(seen) {
				if _, ok := known[n]; !ok {
					check(n)
				}
			}
		} else {
			for n := range c.resources {
				if _, ok := known[n]; !ok {
					check(n)
				}
			}
		}
		for n := range known {
			if n != seenKey {
				check(n)
			}
		}
		returned = c.compactReturned()
	} else {
		subscribed := sub.SubscribedResources()
		returned = make(map[string]string, len(subscribed))
		for n := range subscribed {
			check(n)
			if e, ok := c.resources[n]; ok {
				returned[n] = e.hash
			}
		}
		// Names held but no longer subscribed: forget them, so that a
		// new subscription sends them again.
		for n := range known {
			if _, ok := subscribed[n]; !ok && n != seenKey {
				removed = append(removed, n)
			}
		}
	}
	slices.Sort(send)
	slices.Sort(removed)
	if w.isDelta() {
		if len(send) == 0 && len(removed) == 0 && !replyEvenIfEmpty {
			return pendingSend{}
		}
		res := make([]*discoveryv3.Resource, len(send))
		for i, n := range send {
			res[i] = c.resources[n].delta
		}
		return pendingSend{w: w, dres: c.deltaResponse(w, res, removed, returned)}
	}
	if len(send) == 0 && !replyEvenIfEmpty {
		return pendingSend{}
	}
	res := make([]*anypb.Any, len(send))
	for i, n := range send {
		res[i] = c.resources[n].any
	}
	return pendingSend{w: w, resp: c.sotwResponse(w, res, returned)}
}

func (c *edsCache) sotwResponse(w *edsWatch, res []*anypb.Any, returned map[string]string) *edsResponse {
	return &edsResponse{req: w.req, version: edsVersionPrefix + strconv.FormatUint(c.version, 10), resources: res, returned: returned}
}

func (c *edsCache) deltaResponse(w *edsWatch, res []*discoveryv3.Resource, removed []string, returned map[string]string) *edsDeltaResponse {
	return &edsDeltaResponse{req: w.dreq, version: edsVersionPrefix + strconv.FormatUint(c.version, 10), resources: res, removed: removed, returned: returned}
}

// CreateWatch implements cache.ConfigWatcher for SotW.
func (c *edsCache) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	if req.GetTypeUrl() != c.typeURL {
		return nil, fmt.Errorf("eds: request type %s does not match cache type %s", req.GetTypeUrl(), c.typeURL)
	}
	// A client without a version (or with another cache's) holds nothing
	// it knows of: it is answered even with nothing, as by the LinearCache.
	v := req.GetVersionInfo()
	reply := v == "" || !strings.HasPrefix(v, edsVersionPrefix)
	return c.watch(&edsWatch{req: req, sub: sub, ch: ch}, reply), nil
}

// CreateDeltaWatch implements cache.ConfigWatcher for delta.
func (c *edsCache) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, ch chan cache.DeltaResponse) (func(), error) {
	if req.GetTypeUrl() != c.typeURL {
		return nil, fmt.Errorf("eds: request type %s does not match cache type %s", req.GetTypeUrl(), c.typeURL)
	}
	// A wildcard client's first request is answered even with nothing:
	// Envoy waits for it to finish initializing.
	reply := sub.IsWildcard() && req.GetResponseNonce() == ""
	return c.watch(&edsWatch{dreq: req, sub: sub, dch: ch}, reply), nil
}

func (c *edsCache) watch(w *edsWatch, reply bool) func() {
	c.mu.Lock()
	var s pendingSend
	if !reply {
		// Fast path: a wildcard client that holds the current version.
		if v, ok := compactVersion(w.sub.ReturnedResources()); ok && v == c.version && w.sub.IsWildcard() {
			c.wildcard[w] = struct{}{}
			c.mu.Unlock()
			return func() { c.cancel(w) }
		}
	}
	s = c.compute(w, reply)
	if s.w != nil {
		c.mu.Unlock()
		s.send()
		return func() {}
	}
	c.track(w)
	c.mu.Unlock()
	return func() { c.cancel(w) }
}

// track parks w. Called with c.mu held.
func (c *edsCache) track(w *edsWatch) {
	if w.sub.IsWildcard() {
		c.wildcard[w] = struct{}{}
		return
	}
	for n := range w.sub.SubscribedResources() {
		ws := c.byName[n]
		if ws == nil {
			ws = make(map[*edsWatch]struct{})
			c.byName[n] = ws
		}
		ws[w] = struct{}{}
	}
}

// untrack removes a parked w. Called with c.mu held.
func (c *edsCache) untrack(w *edsWatch) {
	if w.sub.IsWildcard() {
		delete(c.wildcard, w)
		return
	}
	for n := range w.sub.SubscribedResources() {
		if ws := c.byName[n]; ws != nil {
			delete(ws, w)
			if len(ws) == 0 {
				delete(c.byName, n)
			}
		}
	}
}

func (c *edsCache) cancel(w *edsWatch) {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
	c.mu.Lock()
	c.untrack(w)
	c.mu.Unlock()
}

// Fetch implements cache.ConfigFetcher; REST is not served, as with the
// LinearCache.
func (c *edsCache) Fetch(context.Context, *cache.Request) (cache.Response, error) {
	return nil, errors.New("eds: fetch is not implemented")
}

// edsResponse is a SotW response. Its resources are shared by every client
// sent the same change and must not be modified; the DiscoveryResponse is
// this client's own (the server sets its nonce, callbacks its version).
type edsResponse struct {
	req       *cache.Request
	version   string
	resources []*anypb.Any
	returned  map[string]string

	once sync.Once
	out  *discoveryv3.DiscoveryResponse
}

var _ cache.Response = (*edsResponse)(nil)

func (r *edsResponse) GetDiscoveryResponse() (*discoveryv3.DiscoveryResponse, error) {
	r.once.Do(func() {
		r.out = &discoveryv3.DiscoveryResponse{VersionInfo: r.version, Resources: r.resources, TypeUrl: r.req.GetTypeUrl()}
	})
	return r.out, nil
}
func (r *edsResponse) GetRequest() *discoveryv3.DiscoveryRequest { return r.req }
func (r *edsResponse) GetVersion() (string, error)               { return r.version, nil }
func (r *edsResponse) GetResponseVersion() string                { return r.version }
func (r *edsResponse) GetReturnedResources() map[string]string   { return r.returned }
func (r *edsResponse) GetContext() context.Context               { return context.Background() }

// edsDeltaResponse is a delta response; see edsResponse.
type edsDeltaResponse struct {
	req       *cache.DeltaRequest
	version   string
	resources []*discoveryv3.Resource
	removed   []string
	returned  map[string]string

	once sync.Once
	out  *discoveryv3.DeltaDiscoveryResponse
}

var _ cache.DeltaResponse = (*edsDeltaResponse)(nil)

func (r *edsDeltaResponse) GetDeltaDiscoveryResponse() (*discoveryv3.DeltaDiscoveryResponse, error) {
	r.once.Do(func() {
		r.out = &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: r.version, Resources: r.resources,
			RemovedResources: r.removed, TypeUrl: r.req.GetTypeUrl()}
	})
	return r.out, nil
}
func (r *edsDeltaResponse) GetDeltaRequest() *discoveryv3.DeltaDiscoveryRequest { return r.req }
func (r *edsDeltaResponse) GetSystemVersion() (string, error)                   { return r.version, nil }
func (r *edsDeltaResponse) GetResponseVersion() string                          { return r.version }
func (r *edsDeltaResponse) GetNextVersionMap() map[string]string                { return r.returned }
func (r *edsDeltaResponse) GetReturnedResources() map[string]string             { return r.returned }
func (r *edsDeltaResponse) GetContext() context.Context                         { return context.Background() }
