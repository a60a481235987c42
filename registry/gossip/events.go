package gossip

import (
	"sync"
)

// subscriber delivers events to one callback, serially, on its own
// goroutine. Its queue holds at most one pending event per member: a newer
// event for a member replaces the pending one (the latest state wins), so
// the queue is bounded by the cluster size and producers never block.
type subscriber struct {
	fn        func(Event)
	coalesced func()

	// mu guards pending and order.
	mu      sync.Mutex
	pending map[string]Event // member name → latest undelivered event
	order   []string         // member names in first-queued order
	// wake has room for one signal: "pending is not empty".
	wake chan struct{}
	// stop is closed by cancel; done is closed when run returns.
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func newSubscriber(fn func(Event), coalesced func()) *subscriber {
	s := &subscriber{
		fn: fn, coalesced: coalesced,
		pending: make(map[string]Event),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go s.run()
	return s
}

// push queues ev without blocking.
func (s *subscriber) push(ev Event) {
	s.mu.Lock()
	if _, ok := s.pending[ev.Name]; ok {
		s.coalesced()
	} else {
		s.order = append(s.order, ev.Name)
	}
	s.pending[ev.Name] = ev
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// next pops the oldest pending event.
func (s *subscriber) next() (Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.order) == 0 {
		return Event{}, false
	}
	name := s.order[0]
	s.order = s.order[1:]
	ev := s.pending[name]
	delete(s.pending, name)
	return ev, true
}

func (s *subscriber) run() {
	defer close(s.done)
	for {
		select {
		case <-s.wake:
		case <-s.stop:
			return
		}
		for {
			ev, ok := s.next()
			if !ok {
				break
			}
			select {
			case <-s.stop:
				return
			default:
			}
			s.fn(ev)
		}
	}
}

// close stops delivery and waits for an in-flight callback to return.
func (s *subscriber) close() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

// emit queues p's current state to every subscriber. v.mu is held, which
// keeps each member's events in order across subscribers.
func (v *view) emit(p *peerState) {
	for s := range v.subs {
		s.push(Event{Peer: p.copy()})
	}
}

// subscribe registers fn and queues the current state of every known
// member to it first, so the subscriber starts from a complete picture.
func (v *view) subscribe(fn func(Event)) func() {
	s := newSubscriber(fn, v.met.coalesced.Inc)
	v.mu.Lock()
	for _, p := range v.peers {
		s.push(Event{Peer: p.copy()})
	}
	v.subs[s] = struct{}{}
	v.mu.Unlock()
	return func() {
		v.mu.Lock()
		delete(v.subs, s)
		v.mu.Unlock()
		s.close()
	}
}

// closeSubscribers cancels every subscription (Member.Close).
func (v *view) closeSubscribers() {
	v.mu.Lock()
	subs := make([]*subscriber, 0, len(v.subs))
	for s := range v.subs {
		subs = append(subs, s)
	}
	clear(v.subs)
	v.mu.Unlock()
	for _, s := range subs {
		s.close()
	}
}
