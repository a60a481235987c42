package gossip

import (
	"sync/atomic"

	"github.com/hashicorp/memberlist"
)

// delegate implements memberlist's Delegate and EventDelegate. memberlist
// calls both from its I/O goroutines, some with its node lock held, so
// every method only reads an atomic or takes the view's short lock.
type delegate struct {
	// meta is the encoded local node metadata, replaced whole by
	// SetLocalHealth; memberlist reads it whenever it builds an alive message.
	meta *atomic.Pointer[[]byte]
	view *view
	// refute is signalled (never blocking) when a peer asks us to refute.
	refute chan<- struct{}
}

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
)

// NodeMeta implements memberlist.Delegate. The blob never exceeds limit:
// encodeMeta refuses anything over memberlist.MetaMaxSize, which is limit.
func (d *delegate) NodeMeta(limit int) []byte {
	if b := *d.meta.Load(); len(b) <= limit {
		return b
	}
	return nil
}

// NotifyMsg implements memberlist.Delegate. The only user message is the
// refutation nudge (see nudge.go).
func (d *delegate) NotifyMsg(msg []byte) {
	if string(msg) == nudgeMsg {
		select {
		case d.refute <- struct{}{}:
		default: // a refutation is already pending
		}
	}
}

// GetBroadcasts implements memberlist.Delegate.
func (d *delegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState implements memberlist.Delegate.
func (d *delegate) LocalState(bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (d *delegate) MergeRemoteState([]byte, bool) {}

// NotifyJoin implements memberlist.EventDelegate.
func (d *delegate) NotifyJoin(n *memberlist.Node) { d.view.join(n) }

// NotifyUpdate implements memberlist.EventDelegate.
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.view.join(n) }

// NotifyLeave implements memberlist.EventDelegate.
func (d *delegate) NotifyLeave(n *memberlist.Node) { d.view.leave(n) }
