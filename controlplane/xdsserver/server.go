package xdsserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-mesh/shoal/controlplane/xds"
	"github.com/shoal-mesh/shoal/internal/metric"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// Config configures a Server. It is copied by New.
type Config struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the shoal_xds_* metrics; nil registers none.
	Registerer metric.Registerer
	// Debounce is how long an update waits for more updates before it is
	// applied (a burst of registry events becomes one push). Zero means
	// 30ms.
	Debounce time.Duration
	// MaxDelay bounds how long a continuous stream of updates can hold one
	// back. Zero means 250ms.
	MaxDelay time.Duration
	// RemovalDelay is how long a removed cluster or load assignment is
	// still served, so that clients switch their routes away from it
	// before it disappears (make before break: xDS gives no order between
	// a route update and a cluster removal). Zero means 5s.
	RemovalDelay time.Duration
	// ReleaseMemoryAfter is how many bytes of responses make a burst
	// (clients syncing) after which, once less than a quarter of that was
	// pushed in a second, the server returns the memory it freed to the
	// operating system (debug.FreeOSMemory; see releaser). Zero means 64
	// MiB; negative means never.
	ReleaseMemoryAfter int64
	// Translator turns each applied input into resources; nil means a new
	// xds.Memo (the memoized xds.Translate).
	Translator Translator
}

// Translator is what the server needs of the translation (package
// controlplane/xds, which imports nothing from this one): the resources of
// every capability profile and the routes' statuses for one input. It is
// called serially, from Run's goroutine; the results must not be modified
// afterwards (the caches share them). An error means the input could not
// be translated into resources that pass their checks: nothing is
// published.
type Translator interface {
	Translate(in xds.Input, profiles []xds.Capabilities) (map[string]*xds.Resources, []*shoalv1.RouteStatus, error)
}

var _ Translator = (*xds.Memo)(nil)

// Server serves the mesh's xDS resources over ADS, state-of-the-world and
// delta. Create it with New, register it on a gRPC server, run it,
// then feed it with Update.
//
// Caching: ClusterLoadAssignments are the same for every client and live
// in one resourceCache (resourcecache.go), which re-sends only the
// assignments that changed — on SotW as well as delta (EDS is not a
// full-state type) — and finds them in a change log, without comparing
// every assignment per client. Listeners, routes and clusters depend on the
// client's capabilities and live in one resourceCache per capability
// profile and type (profilecaches.go); each type's version is a hash of its
// content, and delta clients get per-resource content hashes, so a change
// re-sends only what changed on delta, and a type that did not change is
// never re-sent on SotW. Every resource is marshaled once per content, not
// per client, and a client's record of what it holds is one entry, not one
// per resource.
type Server struct {
	cfg Config
	log *slog.Logger
	m   *metrics
	dm  *drainMetrics

	eds      *resourceCache
	profiles *profileCaches
	gate     *gate
	track    *tracker
	xds      serverv3.Server

	// ctx is the server's lifetime, cancelled by Close: it ends the xDS
	// streams.
	ctx    context.Context
	cancel context.CancelFunc

	// kick wakes Run when an update is pending (capacity 1; a full channel
	// means Run will look anyway).
	kick    chan struct{}
	running atomic.Bool
	runDone chan struct{}

	// mu guards pending, routes and last.
	mu      sync.Mutex
	pending *xds.Input
	routes  []*shoalv1.RouteStatus

	// last is the last applied input, translated again when lingering
	// resources expire.
	last *xds.Input

	// pub and translator are owned by Run's goroutine.
	pub        *publisher
	translator Translator
	// release is nil with a negative Config.ReleaseMemoryAfter.
	release *releaser
}

// New returns a Server that serves nothing until the first Update
// has been applied by Run.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 30 * time.Millisecond
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 250 * time.Millisecond
	}
	if cfg.RemovalDelay <= 0 {
		cfg.RemovalDelay = 5 * time.Second
	}
	if cfg.ReleaseMemoryAfter == 0 {
		cfg.ReleaseMemoryAfter = 64 << 20
	}
	if cfg.Translator == nil {
		cfg.Translator = &xds.Memo{}
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("xds: metrics: %w", err)
	}
	dm, err := newDrainMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{
		dm:      dm,
		cfg:     cfg,
		log:     cfg.Logger.With("component", "xds"),
		m:       m,
		kick:    make(chan struct{}, 1),
		runDone: make(chan struct{}),

		translator: cfg.Translator,
	}
	s.eds = newEDSCache()
	s.profiles = newProfileCaches(xds.Profiles())
	s.eds.onDrop = m.dropped.Inc
	s.profiles.onDrop = m.dropped.Inc
	for _, byType := range s.profiles.byProfile {
		for _, c := range byType {
			c.onDrop = m.dropped.Inc
		}
	}
	s.gate = newGate(&cache.MuxCache{
		Classify:      func(r *cache.Request) string { return cacheFor(r.GetTypeUrl()) },
		ClassifyDelta: func(r *cache.DeltaRequest) string { return cacheFor(r.GetTypeUrl()) },
		Caches:        map[string]cache.Cache{"eds": s.eds, "profiles": s.profiles},
	})
	s.track = newTracker(m, time.Now)
	if cfg.ReleaseMemoryAfter > 0 {
		s.release = newReleaser(cfg.ReleaseMemoryAfter, time.Second, func() {
			debug.FreeOSMemory()
			m.memReleases.Inc()
		})
		s.track.pushed = s.release.add
	}
	s.pub = newPublisher(s.eds, s.profiles, cfg.RemovalDelay, m, s.log)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.xds = serverv3.NewServer(s.ctx, roleChecked{s.gate}, callbacks{s.track})
	return s, nil
}

func cacheFor(typeURL string) string {
	if typeURL == resource.EndpointType {
		return "eds"
	}
	return "profiles"
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
func (s *Server) Update(in xds.Input) {
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
	debounce := newTimer()
	defer debounce.stop()
	sweep := newTimer()
	defer sweep.stop()
	quiet := newTimer()
	defer quiet.stop()
	var burst <-chan struct{}
	if s.release != nil {
		burst = s.release.burst
		defer s.release.wait()
	}
	var firstAt time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.ctx.Done():
			return nil
		case <-s.kick:
			now := time.Now()
			if debounce.c == nil {
				firstAt = now
			}
			debounce.reset(min(s.cfg.Debounce, s.cfg.MaxDelay-now.Sub(firstAt)))
		case <-debounce.c:
			debounce.c = nil
			sweep.resetAt(s.apply(false))
		case <-sweep.c:
			sweep.c = nil
			sweep.resetAt(s.apply(true))
		case <-burst:
			s.release.start()
			quiet.reset(s.release.quiet)
		case <-quiet.c:
			quiet.c = nil
			if !s.release.check() {
				quiet.reset(s.release.quiet)
			}
		}
	}
}

// timer is a time.Timer whose channel is nil while it is not armed.
type timer struct {
	t *time.Timer
	c <-chan time.Time
}

func newTimer() *timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &timer{t: t}
}

func (t *timer) reset(d time.Duration) { t.t.Reset(d); t.c = t.t.C }

// resetAt arms the timer for at, or disarms it for the zero time.
func (t *timer) resetAt(at time.Time) {
	if at.IsZero() {
		t.t.Stop()
		t.c = nil
		return
	}
	t.reset(time.Until(at))
}

func (t *timer) stop() { t.t.Stop() }

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

// apply translates the pending input (or, for a sweep, the last one) for
// every capability profile and publishes it. It returns when the next
// lingering resource expires (zero if none).
func (s *Server) apply(sweep bool) time.Time {
	s.mu.Lock()
	in := s.pending
	s.pending = nil
	if in == nil && sweep {
		in = s.last
	}
	s.mu.Unlock()
	if in == nil {
		return time.Time{}
	}
	results, statuses, err := s.translator.Translate(*in, xds.Profiles())
	if err != nil {
		// A translator bug: keep serving the last good state.
		s.m.failures.Inc()
		s.log.Error("translation failed its check; keeping the last state", "err", err)
		return s.pub.nextExpiry()
	}
	next := s.pub.publish(results, time.Now())
	s.mu.Lock()
	s.routes, s.last = statuses, in
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
	return next
}

// edsVersionPrefix starts every EDS version. The EDS cache numbers its
// versions per process; callbacks replace the number with a content hash
// before a SotW response is sent, so every control plane sends the same
// version for the same assignments. The cache reads only this prefix of a
// request's version.
const edsVersionPrefix = "eds-"

// callbacks are the tracker plus the EDS version rewrite.
type callbacks struct{ *tracker }

func (c callbacks) OnStreamResponse(ctx context.Context, id int64, req *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	if resp.GetTypeUrl() == resource.EndpointType {
		h := sha256.New()
		for _, r := range resp.GetResources() {
			h.Write(r.GetValue())
		}
		resp.VersionInfo = edsVersionPrefix + hex.EncodeToString(h.Sum(nil)[:8])
	}
	c.tracker.OnStreamResponse(ctx, id, req, resp)
}
