package xds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// Config configures a Server. It is copied by NewServer.
type Config struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the shoal_xds_* metrics; nil registers none.
	Registerer prometheus.Registerer
	// Debounce is how long an update waits for more updates before it is
	// applied (a burst of registry events becomes one push). Zero means
	// 30ms.
	Debounce time.Duration
	// MaxDelay bounds how long a continuous stream of updates can hold one
	// back. Zero means 250ms.
	MaxDelay time.Duration
}

// Server serves the mesh's xDS resources over ADS, state-of-the-world and
// delta. Create it with NewServer, register it on a gRPC server, run it,
// then feed it with Update.
//
// Caching: ClusterLoadAssignments are the same for every client and live
// in one go-control-plane LinearCache, which re-sends only the assignments
// that changed — on SotW as well as delta (EDS is not a full-state type).
// Listeners, routes and clusters depend on the client's capabilities and
// live in a snapshot cache keyed by capability profile; each type's version
// is a hash of its content, and delta clients get per-resource content
// hashes, so a change re-sends only what changed on delta, and a type that
// did not change is never re-sent on SotW.
type Server struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	eds   *cache.LinearCache
	snaps cache.SnapshotCache
	gate  *gate
	track *tracker
	xds   serverv3.Server

	// ctx is the server's lifetime, cancelled by Close: it ends the xDS
	// streams.
	ctx    context.Context
	cancel context.CancelFunc

	// kick wakes Run when an update is pending (capacity 1; a full channel
	// means Run will look anyway).
	kick    chan struct{}
	running atomic.Bool
	runDone chan struct{}

	// mu guards pending and routes.
	mu      sync.Mutex
	pending *Input
	routes  []*shoalv1.RouteStatus

	// Owned by Run's goroutine.
	claVersions  map[string]string
	snapVersions map[string][3]string
}

// NewServer returns a Server that serves nothing until the first Update
// has been applied by Run.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 30 * time.Millisecond
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 250 * time.Millisecond
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("xds: metrics: %w", err)
	}
	s := &Server{
		cfg:          cfg,
		log:          cfg.Logger.With("component", "xds"),
		m:            m,
		kick:         make(chan struct{}, 1),
		runDone:      make(chan struct{}),
		claVersions:  make(map[string]string),
		snapVersions: make(map[string][3]string),
	}
	cl := logAdapter{s.log}
	s.eds = cache.NewLinearCache(endpointType, cache.WithVersionPrefix(edsVersionPrefix), cache.WithLogger(cl))
	s.snaps = cache.NewSnapshotCache(false, profileHash{}, cl)
	s.gate = newGate(&cache.MuxCache{
		Classify:      func(r *cache.Request) string { return cacheFor(r.GetTypeUrl()) },
		ClassifyDelta: func(r *cache.DeltaRequest) string { return cacheFor(r.GetTypeUrl()) },
		Caches:        map[string]cache.Cache{"eds": s.eds, "snapshot": s.snaps},
	})
	s.track = newTracker(m, time.Now)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.xds = serverv3.NewServer(s.ctx, s.gate, callbacks{s.track})
	return s, nil
}

func cacheFor(typeURL string) string {
	if typeURL == endpointType {
		return "eds"
	}
	return "snapshot"
}

// Register adds the aggregated discovery service (SotW and delta) to g.
func (s *Server) Register(g *grpc.Server) {
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
}

// Update hands the server the complete current state. It never blocks and
// is safe for concurrent use; updates arriving within Config.Debounce of
// each other are coalesced and only the last is translated. in must not be
// modified after the call. The first call must carry the first full read of
// etcd: nothing is served before it.
func (s *Server) Update(in Input) {
	s.mu.Lock()
	if s.pending != nil {
		s.m.coalesced.Inc()
	}
	s.pending = &in
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run applies updates until ctx is done or Close is called, and returns
// nil then. It must be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("xds: Run called twice")
	}
	defer close(s.runDone)
	var (
		timer   *time.Timer
		timerC  <-chan time.Time
		firstAt time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.ctx.Done():
			return nil
		case <-s.kick:
			now := time.Now()
			if timerC == nil {
				firstAt = now
			}
			wait := min(s.cfg.Debounce, s.cfg.MaxDelay-now.Sub(firstAt))
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			timerC = timer.C
		case <-timerC:
			timerC = nil
			s.apply()
		}
	}
}

// Close ends every xDS stream and waits for Run to return. Idempotent.
// Stop the gRPC server first (the lead's shutdown order): Close does not
// stop it.
func (s *Server) Close() error {
	s.cancel()
	if s.running.Load() {
		<-s.runDone
	}
	return nil
}

// Ready reports whether the first update has been applied.
func (s *Server) Ready() bool {
	s.gate.mu.Lock()
	defer s.gate.mu.Unlock()
	return s.gate.open
}

// Status returns every connected xDS client with what it was sent, ACKed
// and NACKed per resource type, sorted by node id. The result is a copy.
func (s *Server) Status() []*shoalv1.XdsClient { return s.track.clients() }

// RouteStatuses returns whether each route of the last applied update is
// served, sorted by name. The result is a copy.
func (s *Server) RouteStatuses() []*shoalv1.RouteStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*shoalv1.RouteStatus, len(s.routes))
	for i, r := range s.routes {
		out[i] = proto.CloneOf(r)
	}
	return out
}

// apply translates the pending input for every capability profile and
// publishes it: new and changed load assignments first, then the
// listeners, routes and clusters, then removed load assignments, so that a
// client never sees a cluster whose assignment is missing.
func (s *Server) apply() {
	s.mu.Lock()
	in := s.pending
	s.pending = nil
	s.mu.Unlock()
	if in == nil {
		return
	}
	profiles := Profiles()
	results := make([]*Resources, len(profiles))
	var statuses []*shoalv1.RouteStatus
	for i, caps := range profiles {
		res, st := Translate(*in, caps)
		if err := res.Check(); err != nil {
			// A translator bug: keep serving the last good state.
			s.m.failures.Inc()
			s.log.Error("translation failed its check; keeping the last state", "profile", caps.Profile, "err", err)
			return
		}
		results[i], statuses = res, st
	}
	removed := s.updateEndpoints(results[0].Endpoints)
	for i, caps := range profiles {
		if err := s.setSnapshot(caps.Profile, results[i]); err != nil {
			s.log.Error("set snapshot", "profile", caps.Profile, "err", err)
		}
	}
	if len(removed) > 0 {
		if err := s.eds.UpdateResources(nil, removed); err != nil {
			s.log.Error("remove endpoint assignments", "err", err)
		}
	}
	s.mu.Lock()
	s.routes = statuses
	s.mu.Unlock()
	rejected := 0
	for _, st := range statuses {
		if !st.GetAccepted() {
			rejected++
		}
	}
	s.m.rejected.Set(float64(rejected))
	s.m.updates.Inc()
	if err := s.gate.openGate(); err != nil {
		s.log.Warn("open held xDS watches", "err", err)
	}
}

// updateEndpoints puts new and changed load assignments in the EDS cache
// and returns the names of those to remove.
func (s *Server) updateEndpoints(clas []types.Resource) (removed []string) {
	changed := make(map[string]types.Resource)
	next := make(map[string]string, len(clas))
	for _, r := range clas {
		name := cache.GetResourceName(r)
		v := hashResource(r)
		next[name] = v
		if s.claVersions[name] != v {
			changed[name] = r
		}
	}
	for name := range s.claVersions {
		if _, ok := next[name]; !ok {
			removed = append(removed, name)
		}
	}
	slices.Sort(removed)
	s.claVersions = next
	s.m.changedCLA.Add(float64(len(changed) + len(removed)))
	if len(changed) > 0 {
		if err := s.eds.UpdateResources(changed, nil); err != nil {
			s.log.Error("update endpoint assignments", "err", err)
		}
	}
	return removed
}

// setSnapshot publishes a profile's listeners, routes and clusters with
// content-hash versions, unless none of them changed.
func (s *Server) setSnapshot(profile string, res *Resources) error {
	groups := [3][]types.Resource{res.Listeners, res.Routes, res.Clusters}
	var versions [3]string
	for i, g := range groups {
		names := make([]string, len(g))
		hashes := make(map[string]string, len(g))
		for j, r := range g {
			names[j] = cache.GetResourceName(r)
			hashes[names[j]] = hashResource(r)
		}
		versions[i] = hashVersion(names, hashes)
	}
	if old, ok := s.snapVersions[profile]; ok && old == versions {
		return nil
	}
	snap := &cache.Snapshot{}
	snap.Resources[types.Listener] = cache.NewResources(versions[0], groups[0])
	snap.Resources[types.Route] = cache.NewResources(versions[1], groups[1])
	snap.Resources[types.Cluster] = cache.NewResources(versions[2], groups[2])
	if err := s.snaps.SetSnapshot(s.ctx, profile, snap); err != nil {
		return err
	}
	s.snapVersions[profile] = versions
	return nil
}

// profileHash keys the snapshot cache by capability profile: clients with
// the same capabilities share one snapshot.
type profileHash struct{}

func (profileHash) ID(node *corev3.Node) string { return CapabilitiesFor(node).Profile }

// edsVersionPrefix starts every EDS version. The LinearCache numbers its
// versions per process; callbacks replace the number with a content hash
// before a SotW response is sent, so every control plane sends the same
// version for the same assignments. The cache reads only this prefix of a
// request's version.
const edsVersionPrefix = "eds-"

// callbacks are the tracker plus the EDS version rewrite.
type callbacks struct{ *tracker }

func (c callbacks) OnStreamResponse(ctx context.Context, id int64, req *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	if resp.GetTypeUrl() == endpointType {
		h := sha256.New()
		for _, r := range resp.GetResources() {
			h.Write(r.GetValue())
		}
		resp.VersionInfo = edsVersionPrefix + hex.EncodeToString(h.Sum(nil)[:8])
	}
	c.tracker.OnStreamResponse(ctx, id, req, resp)
}

// logAdapter routes go-control-plane's logging to slog; its Info is
// per-watch chatter and goes to Debug.
type logAdapter struct{ l *slog.Logger }

func (a logAdapter) Debugf(f string, args ...any) { a.l.Debug(fmt.Sprintf(f, args...)) }
func (a logAdapter) Infof(f string, args ...any)  { a.l.Debug(fmt.Sprintf(f, args...)) }
func (a logAdapter) Warnf(f string, args ...any)  { a.l.Warn(fmt.Sprintf(f, args...)) }
func (a logAdapter) Errorf(f string, args ...any) { a.l.Error(fmt.Sprintf(f, args...)) }
