package gossip

import (
	"crypto"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// view is this member's picture of the cluster: memberlist's join, update
// and leave events, plus suspicion and refutation read off the wire by the
// tap. It is safe for concurrent use; its methods never block beyond a
// short critical section and never call into memberlist.
type view struct {
	self string
	now  func() time.Time
	// suspectTTL is how long a suspicion may stand without memberlist
	// declaring the member dead; after that the refutation must have come
	// in a way the tap cannot see (TCP push/pull) and the member is alive.
	suspectTTL func(members int) time.Duration
	// deadTTL is how long dead and left members are remembered.
	deadTTL time.Duration
	met     *metrics
	onErr   func(msg string, args ...any)
	// ticketKeys, when it holds keys, makes every other member's health
	// claims need a ticket signed by one of them (ticket.go); claims about
	// instances of other services than the ticket's are dropped.
	ticketKeys atomic.Pointer[[]crypto.PublicKey]

	// mu guards peers, byInstance and subs, and orders event delivery.
	mu         sync.RWMutex
	peers      map[string]*peerState
	byInstance map[InstanceKey][]string // instance → names of members claiming it
	subs       map[*subscriber]struct{}
}

// peerState is a Peer plus the incarnation bookkeeping of the tap.
type peerState struct {
	Peer
	inc        uint32    // highest incarnation seen on the wire
	suspectInc uint32    // incarnation the standing suspicion is about
	leaving    bool      // a dead message from the member itself was seen
	nudged     time.Time // when the member was last asked to refute
}

func newView(self string, met *metrics, suspectTTL func(int) time.Duration, onErr func(string, ...any)) *view {
	return &view{
		self: self, now: time.Now, suspectTTL: suspectTTL, deadTTL: 5 * time.Minute,
		met: met, onErr: onErr,
		peers:      make(map[string]*peerState),
		byInstance: make(map[InstanceKey][]string),
		subs:       make(map[*subscriber]struct{}),
	}
}

// join handles memberlist's NotifyJoin and NotifyUpdate: the member is
// alive (an update carries an alive message with a higher incarnation, so
// it also ends a suspicion).
func (v *view) join(n *memberlist.Node) {
	meta, err := decodeMeta(n.Meta)
	if err != nil {
		v.onErr("gossip: ignoring node metadata", "node", n.Name, "err", err)
	}
	meta.Instances = v.admit(n.Name, meta)
	v.mu.Lock()
	defer v.mu.Unlock()
	p, ok := v.peers[n.Name]
	if !ok {
		p = &peerState{Peer: Peer{Name: n.Name}}
		v.peers[n.Name] = p
	}
	p.Addr = n.Address()
	p.Role = meta.Role
	p.leaving = false
	v.countFlips(p.Instances, meta.Instances)
	v.reindex(p.Name, p.Instances, meta.Instances)
	p.Instances = meta.Instances
	v.setState(p, MemberAlive)
	v.emit(p)
}

// admit returns the instances whose health member name may claim: all of
// them without ticket keys (or for this member itself), else those of the
// service its valid ticket names. It does not take mu.
func (v *view) admit(name string, meta nodeMeta) []InstanceHealth {
	keys := v.ticketKeys.Load()
	if name == v.self || keys == nil || len(*keys) == 0 || len(meta.Instances) == 0 {
		return meta.Instances
	}
	svc, err := VerifyTicket(*keys, name, meta.Ticket, v.now())
	kept := slices.DeleteFunc(slices.Clone(meta.Instances), func(in InstanceHealth) bool { return err != nil || in.Service != svc })
	if dropped := len(meta.Instances) - len(kept); dropped > 0 {
		v.met.claimsIgnored.Add(uint64(dropped))
		reason := "instances of another service than its identity's (" + svc + ")"
		if err != nil {
			reason = err.Error()
		}
		v.onErr("gossip: ignoring a member's health claims", "node", name, "claims", dropped, "reason", reason)
	}
	return kept
}

// leave handles memberlist's NotifyLeave, which covers both a graceful
// leave and a dead declaration; the tap tells them apart.
func (v *view) leave(n *memberlist.Node) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p, ok := v.peers[n.Name]
	if !ok {
		return
	}
	if p.leaving {
		v.setState(p, MemberLeft)
	} else {
		v.setState(p, MemberDead)
		v.met.dead.Inc()
	}
	v.emit(p)
}

// observe applies suspect, alive and dead messages seen by the tap, with
// memberlist's incarnation rules (state.go suspectNode, aliveNode).
func (v *view) observe(msgs []wireMsg) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, m := range msgs {
		p, ok := v.peers[m.Node]
		if !ok || m.Node == v.self {
			continue
		}
		switch m.Kind {
		case kindSuspect:
			if p.State == MemberAlive && m.Incarnation >= p.inc {
				p.inc, p.suspectInc = m.Incarnation, m.Incarnation
				v.setState(p, MemberSuspect)
				v.met.suspect.Inc()
				v.emit(p)
			}
		case kindAlive:
			if p.State == MemberSuspect && m.Incarnation > p.suspectInc {
				v.setState(p, MemberAlive)
				v.met.refuted.Inc()
				v.emit(p)
			}
			p.inc = max(p.inc, m.Incarnation)
		case kindDead:
			if m.From == m.Node {
				p.leaving = true
			}
		}
	}
}

// expire ends suspicions that outlived suspectTTL and forgets members dead
// or left for longer than deadTTL. It returns the members suspected for
// longer than nudgeAfter (at most once per nudgeAfter each), to be asked
// to refute.
func (v *view) expire(nudgeAfter time.Duration) (nudge []Peer) {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	ttl := v.suspectTTL(len(v.peers))
	for name, p := range v.peers {
		switch {
		case p.State == MemberSuspect && now.Sub(p.Since) > nudgeAfter && now.Sub(p.nudged) > nudgeAfter && now.Sub(p.Since) <= ttl:
			p.nudged = now
			nudge = append(nudge, p.copy())
		case p.State == MemberSuspect && now.Sub(p.Since) > ttl:
			v.setState(p, MemberAlive)
			v.emit(p)
		case (p.State == MemberDead || p.State == MemberLeft) && now.Sub(p.Since) > v.deadTTL:
			v.reindex(name, p.Instances, nil)
			v.met.members.WithLabelValues(p.State.String()).Dec()
			delete(v.peers, name)
		}
	}
	return nudge
}

// setState moves p to s and keeps the members gauge in step. mu is held.
func (v *view) setState(p *peerState, s MemberState) {
	if p.State == s {
		return
	}
	if p.State != 0 {
		v.met.members.WithLabelValues(p.State.String()).Dec()
	}
	v.met.members.WithLabelValues(s.String()).Inc()
	p.State = s
	p.Since = v.now()
}

// reindex replaces the instances claimed by name. mu is held.
func (v *view) reindex(name string, old, cur []InstanceHealth) {
	for _, in := range old {
		names := slices.DeleteFunc(v.byInstance[in.InstanceKey], func(s string) bool { return s == name })
		if len(names) == 0 {
			delete(v.byInstance, in.InstanceKey)
		} else {
			v.byInstance[in.InstanceKey] = names
		}
	}
	for _, in := range cur {
		if !slices.Contains(v.byInstance[in.InstanceKey], name) {
			v.byInstance[in.InstanceKey] = append(v.byInstance[in.InstanceKey], name)
		}
	}
}

// countFlips counts instances whose health changed. mu is held.
func (v *view) countFlips(old, cur []InstanceHealth) {
	for _, in := range cur {
		for _, o := range old {
			if o.InstanceKey == in.InstanceKey && o.Healthy != in.Healthy {
				v.met.flips.Inc()
			}
		}
	}
}

// health returns the best status among the members claiming key.
func (v *view) health(key InstanceKey) (Status, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	best := Status(0)
	for _, name := range v.byInstance[key] {
		p := v.peers[name]
		for _, in := range p.Instances {
			if in.InstanceKey != key {
				continue
			}
			if s := statusOf(p.State, in.Healthy); best == 0 || s < best {
				best = s
			}
		}
	}
	return best, best != 0
}

// snapshot copies every known member, sorted by name.
func (v *view) snapshot() []Peer {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]Peer, 0, len(v.peers))
	for _, p := range v.peers {
		out = append(out, p.copy())
	}
	slices.SortFunc(out, func(a, b Peer) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

func (p *peerState) copy() Peer {
	c := p.Peer
	c.Instances = slices.Clone(p.Instances)
	return c
}
