package xdsserver

import (
	"context"
	"errors"
	"sync"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// gate holds every watch until it is opened, then hands them to the inner
// cache: a control plane serves nothing — not even an empty response —
// before its first full read of etcd.
type gate struct {
	inner cache.Cache

	// mu guards open and held.
	mu   sync.Mutex
	open bool
	// held are the watches created before open, each forwarded on open.
	held map[*heldWatch]struct{}
}

var _ cache.Cache = (*gate)(nil)

// heldWatch is one watch created through the gate. Its cancel is the inner
// cache's once the gate has opened.
type heldWatch struct {
	forward func() (func(), error)
	cancel  func()
}

func newGate(inner cache.Cache) *gate {
	return &gate{inner: inner, held: make(map[*heldWatch]struct{})}
}

// CreateWatch implements cache.ConfigWatcher. Called by the stream
// goroutines; does not block.
func (g *gate) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	return g.watch(func() (func(), error) { return g.inner.CreateWatch(req, sub, ch) })
}

// CreateDeltaWatch implements cache.ConfigWatcher.
func (g *gate) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, ch chan cache.DeltaResponse) (func(), error) {
	return g.watch(func() (func(), error) { return g.inner.CreateDeltaWatch(req, sub, ch) })
}

// Fetch implements cache.ConfigFetcher (REST); it fails before the gate
// opens.
func (g *gate) Fetch(ctx context.Context, req *cache.Request) (cache.Response, error) {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	if !open {
		return nil, errors.New("xds: not ready: first full read of the registry not done")
	}
	return g.inner.Fetch(ctx, req)
}

func (g *gate) watch(forward func() (func(), error)) (func(), error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open {
		return forward()
	}
	w := &heldWatch{forward: forward}
	g.held[w] = struct{}{}
	return func() { g.cancel(w) }, nil
}

func (g *gate) cancel(w *heldWatch) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.held, w)
	if w.cancel != nil {
		w.cancel()
	}
}

// openGate forwards the held watches to the inner cache, which by now has
// the first full state. Later watches go straight through. Idempotent.
// The inner cache may answer a forwarded watch at once; the server's
// response channels hold one response per type, so this never blocks.
func (g *gate) openGate() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open {
		return nil
	}
	g.open = true
	var errs []error
	for w := range g.held {
		delete(g.held, w)
		cancel, err := w.forward()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		w.cancel = cancel
	}
	return errors.Join(errs...)
}
