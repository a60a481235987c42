package controlplane

import (
	"context"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-mesh/shoal/controlplane/policies"
	"github.com/shoal-mesh/shoal/controlplane/routes"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/registry/etcdstore"
	"github.com/shoal-mesh/shoal/registry/kvwatch"
)

// meshState is the control plane's view of etcd: every instance (with the
// health known for it) and every route. It holds nothing etcd cannot
// rebuild. It is safe for concurrent use.
type meshState struct {
	instances *etcdstore.Store
	routes    *routes.Store
	policies  *policies.Store
	log       *slog.Logger
	// onChange is called (from the watch goroutines, serialized by mu) after
	// every change once both watches have done their first full read. It
	// must not block.
	onChange func(endpoints []registry.Endpoint, routes []*shoalv1.Route, policies []*shoalv1.AuthorizationPolicy)

	instancesSynced, routesSynced, policiesSynced atomic.Bool

	// mu guards insts, rts, rejected, health and subs.
	mu    sync.Mutex
	insts map[string]*registry.Instance           // by service/id
	rts   map[string]*shoalv1.Route               // by name: the last good version
	pols  map[string]*shoalv1.AuthorizationPolicy // by name
	// rejected are the routes whose stored value the watch refused, by
	// name (routes.Batch.Rejected).
	rejected []routes.Rejection
	health   map[string]registry.Health // by service/id, from gossip
	subs     map[int]func()
	nextID   int
}

func newMeshState(cli *clientv3.Client, log *slog.Logger) *meshState {
	return &meshState{
		instances: etcdstore.New(cli, log),
		routes:    routes.NewStore(cli, log),
		policies:  policies.NewStore(cli, log),
		pols:      map[string]*shoalv1.AuthorizationPolicy{},
		log:       log,
		insts:     map[string]*registry.Instance{},
		rts:       map[string]*shoalv1.Route{},
		health:    map[string]registry.Health{},
		subs:      map[int]func(){},
	}
}

// ready reports whether the first full read of etcd is done.
func (m *meshState) ready() bool {
	return m.instancesSynced.Load() && m.routesSynced.Load() && m.policiesSynced.Load()
}

// run follows etcd until ctx is done.
func (m *meshState) run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); m.instances.Watch(ctx, m.applyInstances) }()
	go func() { defer wg.Done(); m.routes.Watch(ctx, m.applyRoutes) }()
	go func() { defer wg.Done(); m.policies.Watch(ctx, m.applyPolicies) }()
	wg.Wait()
	return nil
}

func (m *meshState) applyInstances(b etcdstore.Batch) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range b.Events {
		key := ev.Service + "/" + ev.ID
		if ev.Type == kvwatch.Put {
			m.insts[key] = ev.Instance
		} else {
			delete(m.insts, key)
		}
	}
	if b.Initial {
		m.instancesSynced.Store(true)
	}
	m.changedLocked()
}

func (m *meshState) applyRoutes(b routes.Batch) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range b.Events {
		if ev.Type == kvwatch.Put {
			m.rts[ev.Name] = ev.Route
		} else {
			delete(m.rts, ev.Name)
		}
	}
	m.rejected = b.Rejected
	if b.Initial {
		m.routesSynced.Store(true)
	}
	if len(b.Events) > 0 || b.Initial {
		m.changedLocked()
	}
}

func (m *meshState) applyPolicies(b policies.Batch) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range b.Changes {
		if c.Policy != nil {
			m.pols[c.Name] = c.Policy
		} else {
			delete(m.pols, c.Name)
		}
	}
	if b.Initial {
		m.policiesSynced.Store(true)
	}
	m.changedLocked()
}

// policiesLocked returns the policies sorted by name.
func (m *meshState) policiesLocked() []*shoalv1.AuthorizationPolicy {
	out := make([]*shoalv1.AuthorizationPolicy, 0, len(m.pols))
	for _, p := range m.pols {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

// routeStatuses merges served, the statuses of the translated routes
// (xdsserver.Server.RouteStatuses, sorted by name), with the routes whose stored
// value was refused: such a route is reported not accepted at the refused
// version, and its error says which version, if any, is still served. The
// result is sorted by name; served is modified.
func (m *meshState) routeStatuses(served []*shoalv1.RouteStatus) []*shoalv1.RouteStatus {
	m.mu.Lock()
	rejected := m.rejected
	m.mu.Unlock()
	for _, rej := range rejected {
		st := &shoalv1.RouteStatus{Name: rej.Name, Version: strconv.FormatInt(rej.Revision, 10)}
		i := slices.IndexFunc(served, func(s *shoalv1.RouteStatus) bool { return s.GetName() == rej.Name })
		switch {
		case i < 0:
			st.Error = rej.Error() + "; no version of it is served"
			served = append(served, st)
		case served[i].GetAccepted():
			st.Error = rej.Error() + "; serving version " + served[i].GetVersion()
			served[i] = st
		default:
			st.Error = rej.Error() + "; version " + served[i].GetVersion() + " is not served either: " + served[i].GetError()
			served[i] = st
		}
	}
	slices.SortStableFunc(served, func(a, b *shoalv1.RouteStatus) int { return strings.Compare(a.GetName(), b.GetName()) })
	return served
}

// setHealth overlays health for instance service/id (from gossip);
// HealthUnknown removes the overlay.
func (m *meshState) setHealth(key string, h registry.Health) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.health[key] == h {
		return
	}
	if h == registry.HealthUnknown {
		delete(m.health, key)
	} else {
		m.health[key] = h
	}
	m.changedLocked()
}

func (m *meshState) changedLocked() {
	for _, notify := range m.subs {
		notify()
	}
	if m.onChange != nil && m.ready() {
		m.onChange(m.endpointsLocked(), m.routesLocked(), m.policiesLocked())
	}
}

// Endpoints returns every instance with its health, sorted by service and
// id (api.InstanceSource).
func (m *meshState) Endpoints() []registry.Endpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.endpointsLocked()
}

func (m *meshState) endpointsLocked() []registry.Endpoint {
	ins := make([]*registry.Instance, 0, len(m.insts))
	for _, in := range m.insts {
		ins = append(ins, in)
	}
	registry.SortInstances(ins)
	out := make([]registry.Endpoint, len(ins))
	for i, in := range ins {
		out[i] = registry.Endpoint{Instance: in, Health: m.health[in.Service+"/"+in.ID]}
	}
	return out
}

func (m *meshState) routesLocked() []*shoalv1.Route {
	out := make([]*shoalv1.Route, 0, len(m.rts))
	for _, r := range m.rts {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

// Subscribe calls notify after every change until cancel (api.InstanceSource).
// notify must not block.
func (m *meshState) Subscribe(notify func()) (cancel func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := m.nextID
	m.nextID++
	m.subs[id] = notify
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.subs, id)
	}
}
