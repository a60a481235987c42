package controlplane

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/registry/kvwatch"
)

// meshState is the control plane's view of etcd: every instance (with the
// health known for it) and every route. It is rebuilt from etcd alone.
type meshState struct {
	store *registry.Store
	log   *slog.Logger

	synced atomic.Bool // the first full read of the registry is done

	// mu guards instances.
	mu        sync.RWMutex
	instances map[string]*registry.Instance // by service/id
}

func newMeshState(cli *clientv3.Client, log *slog.Logger) *meshState {
	return &meshState{
		store:     registry.NewStore(cli, log),
		log:       log,
		instances: map[string]*registry.Instance{},
	}
}

func (m *meshState) ready() bool { return m.synced.Load() }

// run follows etcd until ctx is done.
func (m *meshState) run(ctx context.Context) error {
	err := m.store.Watch(ctx, m.applyInstances)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (m *meshState) applyInstances(b registry.Batch) {
	m.mu.Lock()
	for _, ev := range b.Events {
		key := ev.Service + "/" + ev.ID
		if ev.Type == kvwatch.Put {
			m.instances[key] = ev.Instance
		} else {
			delete(m.instances, key)
		}
	}
	m.mu.Unlock()
	if b.Initial {
		m.synced.Store(true)
	}
}

// endpoints returns every instance with its health, sorted.
func (m *meshState) endpoints() []registry.Endpoint {
	m.mu.RLock()
	ins := make([]*registry.Instance, 0, len(m.instances))
	for _, in := range m.instances {
		ins = append(ins, in)
	}
	m.mu.RUnlock()
	registry.SortInstances(ins)
	out := make([]registry.Endpoint, len(ins))
	for i, in := range ins {
		out[i] = registry.Endpoint{Instance: in}
	}
	return out
}
