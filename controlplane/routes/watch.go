package routes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

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
	// Rejected lists, in name order, every route whose current stored value
	// Watch refused (see Watch). It is complete in every batch, not a
	// change: a route leaves it when a valid value or a delete replaces the
	// refused one. It is the caller's to keep.
	Rejected []Rejection
}

// Rejection is a stored route value that Watch refused: not route JSON, a
// route that fails Validate, or a value naming another route than its key.
// Such a value can only have been written around the Store (etcdctl, a
// script), since every Store write validates first.
type Rejection struct {
	// Name is the route's name: its key below the routes prefix.
	Name string
	// Revision is the etcd ModRevision of the refused value, i.e. the
	// version it would have had.
	Revision int64
	// Err says what is wrong. For an invalid route it is the *FieldError,
	// whose Field is the path of the offending field.
	Err error
}

// Error is "rejected version <revision>: <field path>: <reason>".
func (r Rejection) Error() string {
	reason := r.Err.Error()
	var fe *FieldError
	if errors.As(r.Err, &fe) {
		reason = fe.Reason
		if fe.Field != "" {
			reason = fe.Field + ": " + fe.Reason
		}
	}
	return fmt.Sprintf("rejected version %d: %s", r.Revision, reason)
}

func (r Rejection) Unwrap() error { return r.Err }

// Watch follows every route until ctx is done, calling handle serially from
// its own goroutine (it must not block for long and must not retain
// Batch.Events). It is built on kvwatch, so it resumes from revisions and
// re-lists after compaction.
//
// A stored value that is malformed or invalid is refused and logged, and
// delivers no event: a route whose last good version was delivered keeps
// it (issue 6: a bad write around the API must not take a served route
// out of the mesh). A route this watch has not delivered yet (a control
// plane started after the bad write) gets its last good version from the
// key's etcd history, so every control plane serves the same version; it
// stays absent only if no valid version is left before the bad one (none
// was written since the key was created, or compaction removed it). The
// refusal
// is listed in Batch.Rejected until a valid value or a delete replaces it;
// a batch is delivered whenever that list changes, even with no events.
// Watch returns ctx.Err().
func (s *Store) Watch(ctx context.Context, handle func(Batch)) error {
	// delivered and rejected are owned by kvwatch.Run's goroutine (Handle
	// runs serially).
	delivered := map[string]bool{}
	rejected := map[string]Rejection{}
	return kvwatch.Run(ctx, kvwatch.Config{
		Client: s.cli,
		Prefix: registry.RoutesPrefix,
		Logger: s.log,
		Handle: func(b kvwatch.Batch) {
			out := Batch{Revision: b.Revision, Initial: b.Initial, Resync: b.Resync, Events: make([]Event, 0, len(b.Events))}
			changed := false
			for _, ev := range b.Events {
				e, ok, rej := s.event(ctx, ev, delivered, rejected)
				if ok {
					out.Events = append(out.Events, e)
				}
				changed = changed || rej
			}
			if len(out.Events) > 0 || out.Initial || changed {
				out.Rejected = sortedRejections(rejected)
				handle(out)
			}
		},
	})
}

// event turns a key change into a route event, and updates delivered and
// rejected; rejChanged reports whether rejected changed.
func (s *Store) event(ctx context.Context, ev kvwatch.Event, delivered map[string]bool, rejected map[string]Rejection) (e Event, ok, rejChanged bool) {
	name := strings.TrimPrefix(ev.Key, registry.RoutesPrefix)
	_, wasRejected := rejected[name]
	if ev.Type == kvwatch.Put {
		r, err := checkStored(ev.Key, ev.Value)
		if err != nil {
			rej := Rejection{Name: name, Revision: ev.ModRevision, Err: err}
			rejected[name] = rej
			if delivered[name] {
				s.log.Warn("refusing invalid stored route; keeping its last good version", "key", ev.Key, "err", rej.Error())
				return Event{}, false, true
			}
			good := s.lastGood(ctx, ev.Key, ev.ModRevision)
			if good == nil {
				s.log.Warn("refusing invalid stored route; no earlier valid version in etcd's history", "key", ev.Key, "err", rej.Error())
				return Event{}, false, true
			}
			s.log.Warn("refusing invalid stored route; serving its last good version from etcd's history", "key", ev.Key, "err", rej.Error(), "version", good.Version)
			delivered[name] = true
			return Event{Type: kvwatch.Put, Name: name, Route: good}, true, true
		}
		delete(rejected, name)
		r.Version = strconv.FormatInt(ev.ModRevision, 10)
		delivered[name] = true
		return Event{Type: kvwatch.Put, Name: name, Route: r}, true, wasRejected
	}
	delete(rejected, name)
	if !delivered[name] {
		return Event{}, false, wasRejected
	}
	delete(delivered, name)
	return Event{Type: kvwatch.Delete, Name: name}, true, wasRejected
}

// maxLookBack bounds how many refused values lastGood steps over.
const maxLookBack = 16

// lastGood returns the newest valid value key had before revision rev, from
// etcd's history, with its version; nil if there is none: the key did not
// exist just before (created invalid, or deleted and re-created), the
// history is compacted, or etcd did not answer.
func (s *Store) lastGood(ctx context.Context, key string, rev int64) *shoalv1.Route {
	for range maxLookBack {
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := s.cli.Get(gctx, key, clientv3.WithRev(rev-1))
		cancel()
		if err != nil {
			if !errors.Is(err, rpctypes.ErrCompacted) && ctx.Err() == nil {
				s.log.Warn("reading a route's history", "key", key, "revision", rev-1, "err", err)
			}
			return nil
		}
		if len(resp.Kvs) == 0 {
			return nil
		}
		kv := resp.Kvs[0]
		if r, err := checkStored(key, kv.Value); err == nil {
			r.Version = strconv.FormatInt(kv.ModRevision, 10)
			return r
		}
		rev = kv.ModRevision
	}
	return nil
}

func sortedRejections(m map[string]Rejection) []Rejection {
	out := make([]Rejection, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Rejection) int { return strings.Compare(a.Name, b.Name) })
	return out
}
