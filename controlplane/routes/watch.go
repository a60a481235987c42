package routes

import (
	"context"
	"strings"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/registry/kvwatch"
)

// Event is a change to one route.
type Event struct {
	Type kvwatch.EventType
	Name string
	// Route is the route after a Put, with its Version; nil after a Delete.
	// It is shared with other consumers of the batch and must not be
	// modified.
	Route *shoalv1.Route
}

// Batch is a set of route changes, in revision order.
type Batch struct {
	Events []Event
	// Revision is the etcd revision the view now reflects.
	Revision int64
	// Initial is true on the first batch, which holds every route.
	Initial bool
	// Resync is true after a re-list (compaction, leader loss).
	Resync bool
}

// Watch follows every route until ctx is done, calling handle serially from
// its own goroutine (it must not block for long and must not retain
// Batch.Events). It is built on kvwatch, so it resumes from revisions and
// re-lists after compaction. A stored value that is malformed or invalid is
// logged and skipped; if the route was delivered before, it is delivered as
// a Delete (a route nobody can read is not served). Watch returns
// ctx.Err().
func (s *Store) Watch(ctx context.Context, handle func(Batch)) error {
	// delivered is owned by kvwatch.Run's goroutine (Handle runs serially).
	delivered := map[string]bool{}
	return kvwatch.Run(ctx, kvwatch.Config{
		Client: s.cli,
		Prefix: registry.RoutesPrefix,
		Logger: s.log,
		Handle: func(b kvwatch.Batch) {
			out := Batch{Revision: b.Revision, Initial: b.Initial, Resync: b.Resync, Events: make([]Event, 0, len(b.Events))}
			for _, ev := range b.Events {
				if e, ok := s.event(ev, delivered); ok {
					out.Events = append(out.Events, e)
				}
			}
			if len(out.Events) > 0 || out.Initial {
				handle(out)
			}
		},
	})
}

// event turns a key change into a route event, and updates delivered.
func (s *Store) event(ev kvwatch.Event, delivered map[string]bool) (Event, bool) {
	name := strings.TrimPrefix(ev.Key, registry.RoutesPrefix)
	if ev.Type == kvwatch.Put {
		r, err := decode(ev.Key, ev.Value, ev.ModRevision)
		if err == nil {
			delivered[name] = true
			return Event{Type: kvwatch.Put, Name: name, Route: r}, true
		}
		s.log.Warn("skipping malformed route", "key", ev.Key, "err", err)
	}
	if !delivered[name] {
		return Event{}, false
	}
	delete(delivered, name)
	return Event{Type: kvwatch.Delete, Name: name}, true
}
