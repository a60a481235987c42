package xdsserver

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// cacheWatch is one watch on a resourceCache, SotW (ch) or delta (dch).
type cacheWatch struct {
	req  *cache.Request
	dreq *cache.DeltaRequest
	sub  cache.Subscription
	ch   chan cache.Response
	dch  chan cache.DeltaResponse

	// mu orders the send with cancel; done is set by either.
	mu   sync.Mutex
	done bool
}

func (w *cacheWatch) isDelta() bool { return w.dch != nil }

// CreateWatch implements cache.ConfigWatcher for SotW.
func (c *resourceCache) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	if req.GetTypeUrl() != c.typeURL {
		return nil, fmt.Errorf("xds cache: request type %s does not match cache type %s", req.GetTypeUrl(), c.typeURL)
	}
	w := &cacheWatch{req: req, sub: sub, ch: ch}
	if c.fullState {
		return c.watchFull(w), nil
	}
	// A client without a version (or with another cache's) holds nothing
	// it knows of: it is answered even with nothing, as by the LinearCache.
	v := req.GetVersionInfo()
	reply := v == "" || !strings.HasPrefix(v, edsVersionPrefix)
	return c.watch(w, reply), nil
}

// CreateDeltaWatch implements cache.ConfigWatcher for delta.
func (c *resourceCache) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, ch chan cache.DeltaResponse) (func(), error) {
	if req.GetTypeUrl() != c.typeURL {
		return nil, fmt.Errorf("xds cache: request type %s does not match cache type %s", req.GetTypeUrl(), c.typeURL)
	}
	// A wildcard client's first request is answered even with nothing:
	// Envoy waits for it to finish initializing.
	reply := sub.IsWildcard() && req.GetResponseNonce() == ""
	return c.watch(&cacheWatch{dreq: req, sub: sub, dch: ch}, reply), nil
}

func (c *resourceCache) watch(w *cacheWatch, reply bool) func() {
	c.mu.Lock()
	if !reply {
		// Fast path: a wildcard client that holds the current version.
		if v, ok := compactVersion(w.sub.ReturnedResources()); ok && v == c.version && w.sub.IsWildcard() {
			c.wildcard[w] = struct{}{}
			c.mu.Unlock()
			return func() { c.cancel(w) }
		}
	}
	s := c.compute(w, reply)
	return c.sendOrPark(w, s)
}

// watchFull answers or parks a SotW watch of a full-state cache.
func (c *resourceCache) watchFull(w *cacheWatch) func() {
	c.mu.Lock()
	return c.sendOrPark(w, c.computeFull(w))
}

// sendOrPark sends s, or parks w if there is nothing to send. Called with
// c.mu held, which it releases.
func (c *resourceCache) sendOrPark(w *cacheWatch, s pendingSend) func() {
	if s.w != nil {
		c.mu.Unlock()
		c.sent(s)
		return func() {}
	}
	c.track(w)
	c.mu.Unlock()
	return func() { c.cancel(w) }
}

// pendingSend is a response computed under the cache lock, sent after it.
type pendingSend struct {
	w    *cacheWatch
	resp cache.Response
	dres cache.DeltaResponse
}

// send hands the response to the watch's stream and reports whether it
// was taken (or the watch was already answered).
func (s pendingSend) send() bool {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.w.done {
		return true
	}
	s.w.done = true
	// The server's channels hold one response per type and a watch gets at
	// most one, so these never block; the default is a safety net, counted
	// (shoal_xds_dropped_responses_total).
	if s.dres != nil {
		select {
		case s.w.dch <- s.dres:
			return true
		default:
			return false
		}
	}
	select {
	case s.w.ch <- s.resp:
		return true
	default:
		return false
	}
}

// shared is what clients at one version are sent, computed once per update.
type shared struct {
	any     []*anypb.Any
	delta   []*discoveryv3.Resource
	removed []string
}

// sharedSince computes what a wildcard client at version v lacks.
func (c *resourceCache) sharedSince(v uint64) *shared {
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

// compactVersion returns the seenKey version of a subscription whose
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
func (c *resourceCache) respondFast(w *cacheWatch, memo map[uint64]*shared) (pendingSend, bool) {
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

func (c *resourceCache) compactReturned() map[string]string {
	return map[string]string{seenKey: strconv.FormatUint(c.version, 10)}
}

// compute works out what w's client lacks, in general: sent is the
// response to send, with a nil w if there is nothing to send. Called with
// c.mu held.
func (c *resourceCache) compute(w *cacheWatch, replyEvenIfEmpty bool) pendingSend {
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

// computeFull decides a SotW watch of a full-state cache as the
// SnapshotCache did: the client is sent every resource it subscribes to
// when the version it names is not the current label, or when it lacks one
// of them; otherwise (a nil w) it waits. Called with c.mu held.
func (c *resourceCache) computeFull(w *cacheWatch) pendingSend {
	if w.req.GetVersionInfo() == c.label && !c.lacksSome(w.sub) {
		return pendingSend{}
	}
	if w.sub.IsWildcard() {
		return pendingSend{w: w, resp: c.sotwResponse(w, c.allResources(), map[string]string{sotwSeenKey: c.label})}
	}
	subscribed := w.sub.SubscribedResources()
	names := make([]string, 0, len(subscribed))
	for n := range subscribed {
		if _, ok := c.resources[n]; ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	res := make([]*anypb.Any, len(names))
	returned := make(map[string]string, len(names))
	for i, n := range names {
		res[i] = c.resources[n].any
		returned[n] = c.label
	}
	return pendingSend{w: w, resp: c.sotwResponse(w, res, returned)}
}

// lacksSome reports whether a SotW client lacks a resource it subscribes
// to. Called with c.mu held.
func (c *resourceCache) lacksSome(sub cache.Subscription) bool {
	known := sub.ReturnedResources()
	if sub.IsWildcard() {
		if known[sotwSeenKey] == c.label {
			return false
		}
		for n := range c.resources {
			if _, ok := known[n]; !ok {
				return true
			}
		}
		return false
	}
	for n := range sub.SubscribedResources() {
		if _, ok := known[n]; !ok {
			if _, ok := c.resources[n]; ok {
				return true
			}
		}
	}
	return false
}

// allResources returns every resource sorted by name, built once per
// version. Called with c.mu held.
func (c *resourceCache) allResources() []*anypb.Any {
	if c.all == nil {
		c.all = make([]*anypb.Any, 0, len(c.resources))
		for _, n := range sortedKeys(c.resources) {
			c.all = append(c.all, c.resources[n].any)
		}
	}
	return c.all
}

func (c *resourceCache) sotwResponse(w *cacheWatch, res []*anypb.Any, returned map[string]string) *sotwResponse {
	return &sotwResponse{req: w.req, version: c.label, resources: res, returned: returned}
}

func (c *resourceCache) deltaResponse(w *cacheWatch, res []*discoveryv3.Resource, removed []string, returned map[string]string) *deltaResponse {
	return &deltaResponse{req: w.dreq, version: c.label, resources: res, removed: removed, returned: returned}
}

// sotwResponse is a SotW response. Its resources are shared by every client
// sent the same change and must not be modified; the DiscoveryResponse is
// this client's own (the server sets its nonce, callbacks its version).
type sotwResponse struct {
	req       *cache.Request
	version   string
	resources []*anypb.Any
	returned  map[string]string

	once sync.Once
	out  *discoveryv3.DiscoveryResponse
}

var _ cache.Response = (*sotwResponse)(nil)

func (r *sotwResponse) GetDiscoveryResponse() (*discoveryv3.DiscoveryResponse, error) {
	r.once.Do(func() {
		r.out = &discoveryv3.DiscoveryResponse{VersionInfo: r.version, Resources: r.resources, TypeUrl: r.req.GetTypeUrl()}
	})
	return r.out, nil
}
func (r *sotwResponse) GetRequest() *discoveryv3.DiscoveryRequest { return r.req }
func (r *sotwResponse) GetVersion() (string, error)               { return r.version, nil }
func (r *sotwResponse) GetResponseVersion() string                { return r.version }
func (r *sotwResponse) GetReturnedResources() map[string]string   { return r.returned }
func (r *sotwResponse) GetContext() context.Context               { return context.Background() }

// deltaResponse is a delta response; see sotwResponse.
type deltaResponse struct {
	req       *cache.DeltaRequest
	version   string
	resources []*discoveryv3.Resource
	removed   []string
	returned  map[string]string

	once sync.Once
	out  *discoveryv3.DeltaDiscoveryResponse
}

var _ cache.DeltaResponse = (*deltaResponse)(nil)

func (r *deltaResponse) GetDeltaDiscoveryResponse() (*discoveryv3.DeltaDiscoveryResponse, error) {
	r.once.Do(func() {
		r.out = &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: r.version, Resources: r.resources,
			RemovedResources: r.removed, TypeUrl: r.req.GetTypeUrl()}
	})
	return r.out, nil
}
func (r *deltaResponse) GetDeltaRequest() *discoveryv3.DeltaDiscoveryRequest { return r.req }
func (r *deltaResponse) GetSystemVersion() (string, error)                   { return r.version, nil }
func (r *deltaResponse) GetResponseVersion() string                          { return r.version }
func (r *deltaResponse) GetNextVersionMap() map[string]string                { return r.returned }
func (r *deltaResponse) GetReturnedResources() map[string]string             { return r.returned }
func (r *deltaResponse) GetContext() context.Context                         { return context.Background() }
