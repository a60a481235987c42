package etcdstore

import (
	"context"
	"fmt"
	"log/slog"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/registry/kvwatch"
)

// Store reads and writes instances in etcd. It is safe for concurrent use.
type Store struct {
	cli *clientv3.Client
	log *slog.Logger
}

// New returns a Store over cli; the caller owns cli. A nil logger means
// slog.Default(). Its logs, and those of the registrations it starts, carry
// component=registry, as the sidecar's registration does.
func New(cli *clientv3.Client, logger *slog.Logger) *Store {
	if logger == nil {
		logger = slog.Default()
	}
	return &Store{cli: cli, log: logger.With("component", "registry")}
}

// List returns the instances of service, or of every service when service
// is empty, sorted by service and id, and the etcd revision read. Malformed
// values under the prefix are logged and skipped.
func (s *Store) List(ctx context.Context, service string) ([]*registry.Instance, int64, error) {
	prefix := registry.InstancesPrefix
	if service != "" {
		if !registry.ValidName(service) {
			return nil, 0, &registry.FieldError{Field: "service", Reason: fmt.Sprintf("%q is not a lowercase DNS label of at most 63 characters", service)}
		}
		prefix = registry.ServicePrefix(service)
	}
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("etcdstore: list %q: %w", prefix, err)
	}
	out := make([]*registry.Instance, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		in, err := s.decode(string(kv.Key), kv.Value)
		if err != nil {
			continue
		}
		out = append(out, in)
	}
	registry.SortInstances(out)
	return out, resp.Header.Revision, nil
}

// ServiceSummary is a service and how many instances it has.
type ServiceSummary struct {
	Name      string `json:"name"`
	Instances int    `json:"instances"`
}

// Services returns every service with at least one instance, by name.
func (s *Store) Services(ctx context.Context) ([]ServiceSummary, error) {
	all, _, err := s.List(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []ServiceSummary
	for _, in := range all {
		if n := len(out); n > 0 && out[n-1].Name == in.Service {
			out[n-1].Instances++
			continue
		}
		out = append(out, ServiceSummary{Name: in.Service, Instances: 1})
	}
	return out, nil
}

// decode parses and validates a stored instance and checks that it sits
// under its own key; failures are logged (Warn) and returned.
func (s *Store) decode(key string, value []byte) (*registry.Instance, error) {
	service, id, err := registry.ParseInstanceKey(key)
	if err == nil {
		var in *registry.Instance
		if in, err = registry.UnmarshalInstance(value); err == nil {
			if in.Service == service && in.ID == id {
				return in, nil
			}
			err = fmt.Errorf("etcdstore: value names %s/%s", in.Service, in.ID)
		}
	}
	s.log.Warn("skipping malformed instance", "key", key, "err", err)
	return nil, err
}

// Event is a change to one instance.
type Event struct {
	Type    kvwatch.EventType
	Service string
	ID      string
	// Instance is the instance after a Put; nil after a Delete.
	Instance *registry.Instance
}

// Batch is a set of instance changes, in revision order.
type Batch struct {
	Events   []Event
	Revision int64
	// Initial is true on the first batch, which holds every instance.
	Initial bool
	// Resync is true after a re-list (compaction, leader loss).
	Resync bool
}

// Watch follows every instance until ctx is done, calling handle serially
// from its own goroutine (it must not block for long). A value that
// becomes malformed is delivered as a Delete: a key nobody can parse is not
// routable. Watch returns ctx.Err().
func (s *Store) Watch(ctx context.Context, handle func(Batch)) error {
	return kvwatch.Run(ctx, kvwatch.Config{
		Client: s.cli,
		Prefix: registry.InstancesPrefix,
		Logger: s.log,
		Handle: func(b kvwatch.Batch) {
			out := Batch{Revision: b.Revision, Initial: b.Initial, Resync: b.Resync, Events: make([]Event, 0, len(b.Events))}
			for _, ev := range b.Events {
				service, id, err := registry.ParseInstanceKey(ev.Key)
				if err != nil {
					s.log.Warn("skipping key outside the instance schema", "key", ev.Key)
					continue
				}
				e := Event{Type: kvwatch.Delete, Service: service, ID: id}
				if ev.Type == kvwatch.Put {
					if in, err := s.decode(ev.Key, ev.Value); err == nil {
						e.Type, e.Instance = kvwatch.Put, in
					}
				}
				out.Events = append(out.Events, e)
			}
			handle(out)
		},
	})
}
