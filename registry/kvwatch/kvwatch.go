package kvwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// EventType is the kind of change to a key.
type EventType int

const (
	// Put means the key was created or its value changed.
	Put EventType = iota + 1
	// Delete means the key is gone (deleted or its lease expired).
	Delete
)

func (t EventType) String() string {
	switch t {
	case Put:
		return "put"
	case Delete:
		return "delete"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change to one key.
type Event struct {
	Type EventType
	Key  string
	// Value is the new value after a Put and nil after a Delete.
	Value []byte
	// ModRevision is the etcd revision of the change (of the deletion for a
	// Delete seen on the watch; of the re-list for a Delete found by diff).
	ModRevision int64
}

// Batch is what the consumer receives: changes in revision order.
type Batch struct {
	// Events are the changes since the previous batch. The first batch holds
	// a Put for every key (possibly none).
	Events []Event
	// Revision is the etcd revision the consumer's view now reflects.
	Revision int64
	// Initial is true on the first batch only.
	Initial bool
	// Resync is true when the batch comes from a re-list after the watch
	// could not resume (compaction, leader loss): its events are the
	// difference between the consumer's view and etcd's.
	Resync bool
}

// Config configures Run. Client, Prefix and Handle are required.
type Config struct {
	Client *clientv3.Client
	// Prefix is the key prefix to follow.
	Prefix string
	// Handle receives batches serially from Run's goroutine. It must not
	// block for long and must not retain Batch.Events past the call
	// (values may be shared with Run's own view; do not modify them).
	Handle func(Batch)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// RetryMin and RetryMax bound the jittered exponential backoff between
	// failed list or watch attempts; zero means 100ms and 5s.
	RetryMin, RetryMax time.Duration
}

type entry struct {
	value []byte
	rev   int64
}

// Run follows cfg.Prefix until ctx is done, then returns ctx.Err(). It
// never gives up on etcd errors: it retries with backoff and re-lists.
func Run(ctx context.Context, cfg Config) error {
	switch {
	case cfg.Client == nil:
		return errors.New("kvwatch: Config.Client is required")
	case cfg.Prefix == "":
		return errors.New("kvwatch: Config.Prefix is required")
	case cfg.Handle == nil:
		return errors.New("kvwatch: Config.Handle is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Second
	}
	w := &watcher{cfg: cfg, log: cfg.Logger.With("component", "kvwatch", "prefix", cfg.Prefix), view: map[string]entry{}}
	return w.run(ctx)
}

// watcher is owned by Run's goroutine; nothing in it is shared.
type watcher struct {
	cfg     Config
	log     *slog.Logger
	view    map[string]entry // what the consumer has been told
	rev     int64            // revision the view reflects; 0 before the first list
	backoff time.Duration
}

func (w *watcher) run(ctx context.Context) error {
	for {
		if err := w.list(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			w.log.Warn("list failed; retrying", "err", err)
			if err := w.sleep(ctx); err != nil {
				return err
			}
			continue
		}
		w.backoff = 0
		err := w.watch(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, rpctypes.ErrCompacted) {
			w.log.Info("watch revision compacted; re-listing", "rev", w.rev)
			continue
		}
		w.log.Warn("watch broke; re-listing", "err", err, "rev", w.rev)
		if err := w.sleep(ctx); err != nil {
			return err
		}
	}
}

// list reads the whole prefix and delivers the difference from the view.
func (w *watcher) list(ctx context.Context) error {
	resp, err := w.cfg.Client.Get(ctx, w.cfg.Prefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("kvwatch: list %q: %w", w.cfg.Prefix, err)
	}
	rev := resp.Header.Revision
	initial := w.rev == 0
	seen := make(map[string]struct{}, len(resp.Kvs))
	var events []Event
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		seen[k] = struct{}{}
		if old, ok := w.view[k]; ok && old.rev == kv.ModRevision {
			continue
		}
		w.view[k] = entry{value: kv.Value, rev: kv.ModRevision}
		events = append(events, Event{Type: Put, Key: k, Value: kv.Value, ModRevision: kv.ModRevision})
	}
	for k := range w.view {
		if _, ok := seen[k]; !ok {
			delete(w.view, k)
			events = append(events, Event{Type: Delete, Key: k, ModRevision: rev})
		}
	}
	w.rev = rev
	if initial || len(events) > 0 {
		w.cfg.Handle(Batch{Events: events, Revision: rev, Initial: initial, Resync: !initial})
	}
	return nil
}

// watch follows the prefix from w.rev+1 until the watch fails.
func (w *watcher) watch(ctx context.Context) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := w.cfg.Client.Watch(wctx, w.cfg.Prefix, clientv3.WithPrefix(),
		clientv3.WithRev(w.rev+1), clientv3.WithProgressNotify())
	for resp := range wch {
		if resp.CompactRevision != 0 {
			return rpctypes.ErrCompacted
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("kvwatch: watch %q: %w", w.cfg.Prefix, err)
		}
		w.apply(resp.Events, resp.Header.Revision)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("kvwatch: watch channel closed")
}

func (w *watcher) apply(evs []*clientv3.Event, rev int64) {
	events := make([]Event, 0, len(evs))
	for _, ev := range evs {
		k := string(ev.Kv.Key)
		switch ev.Type {
		case mvccpb.PUT:
			w.view[k] = entry{value: ev.Kv.Value, rev: ev.Kv.ModRevision}
			events = append(events, Event{Type: Put, Key: k, Value: ev.Kv.Value, ModRevision: ev.Kv.ModRevision})
		case mvccpb.DELETE:
			if _, ok := w.view[k]; !ok {
				continue
			}
			delete(w.view, k)
			events = append(events, Event{Type: Delete, Key: k, ModRevision: ev.Kv.ModRevision})
		}
	}
	if rev > w.rev {
		w.rev = rev
	}
	if len(events) > 0 {
		w.cfg.Handle(Batch{Events: events, Revision: w.rev})
	}
}

func (w *watcher) sleep(ctx context.Context) error {
	switch {
	case w.backoff == 0:
		w.backoff = w.cfg.RetryMin
	default:
		w.backoff = min(w.cfg.RetryMax, w.backoff*2)
	}
	d := w.backoff/2 + rand.N(w.backoff/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
