package xdsclient

import (
	"context"
	"sync"
)

// notifier delivers snapshots to a callback serially on one goroutine.
// Its queue holds one snapshot: overflow policy is coalescing, the newest
// snapshot replaces an undelivered older one (counted in
// shoal_xdsclient_snapshots_coalesced_total). push never blocks.
type notifier struct {
	deliver   func(*Snapshot)
	onCoalesc func()

	// wake has capacity 1 and signals that pending is set.
	wake chan struct{}

	// mu guards pending.
	mu      sync.Mutex
	pending *Snapshot
}

func newNotifier(deliver func(*Snapshot), onCoalesce func()) *notifier {
	return &notifier{deliver: deliver, onCoalesc: onCoalesce, wake: make(chan struct{}, 1)}
}

// push queues s, replacing an undelivered snapshot. Safe for concurrent use.
func (n *notifier) push(s *Snapshot) {
	n.mu.Lock()
	if n.pending != nil {
		n.onCoalesc()
	}
	n.pending = s
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// run delivers queued snapshots until ctx is done. A snapshot still queued
// then is dropped. run returns only after an in-progress delivery returns.
func (n *notifier) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		}
		n.mu.Lock()
		s := n.pending
		n.pending = nil
		n.mu.Unlock()
		if s != nil {
			n.deliver(s)
		}
	}
}
