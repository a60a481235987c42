package gossip

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrClosed is returned by methods called after Close.
var ErrClosed = errors.New("gossip: member closed")

// updateTimeout bounds how long SetLocalHealth waits for memberlist to send
// the new metadata to at least one peer.
const updateTimeout = time.Second

// Member is this process's membership in the gossip cluster. All methods
// are safe for concurrent use.
type Member struct {
	cfg  Config
	log  *slog.Logger
	ml   *memberlist.Memberlist
	tr   *tapTransport
	ring *memberlist.Keyring // nil without encryption
	view *view
	met  *metrics
	port int

	// localMu guards local (the instances this member fronts) and ticket,
	// and orders their encoding into meta.
	localMu sync.Mutex
	local   []InstanceHealth
	ticket  []byte
	meta    atomic.Pointer[[]byte]

	// refuteCh carries peers' requests to refute a suspicion (delegate →
	// nudge worker); nudgeCh carries suspects to nudge (run → nudge worker).
	refuteCh chan struct{}
	nudgeCh  chan []Peer

	// cancel ends ctx, the lifetime of the run and nudge goroutines (wg).
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// New starts a member: it binds the gossip port and starts memberlist's
// probe and gossip loops, but does not join anyone; call Join. Close
// releases everything New started.
func New(cfg Config) (m *Member, err error) {
	if err := cfg.validateAndDefault(); err != nil {
		return nil, err
	}
	cfg.Instances = slices.Clone(cfg.Instances)
	m = &Member{cfg: cfg, met: newMetrics(), local: cfg.Instances, ticket: cfg.Ticket,
		refuteCh: make(chan struct{}, 1), nudgeCh: make(chan []Peer, 1),
		log: cfg.Logger.With("component", "gossip", "node", cfg.Name)}
	meta, err := encodeMeta(nodeMeta{Role: cfg.Role, Instances: m.local, Ticket: m.ticket})
	if err != nil {
		return nil, err
	}
	m.meta.Store(&meta)
	if cfg.Registerer != nil {
		if err := m.met.register(cfg.Registerer); err != nil {
			return nil, err
		}
		met := m.met // m is nil when New fails
		defer func() {
			if err != nil {
				met.unregister(cfg.Registerer)
			}
		}()
	}
	if len(cfg.Keys) > 0 {
		if m.ring, err = memberlist.NewKeyring(cfg.Keys, cfg.Keys[0]); err != nil {
			return nil, fmt.Errorf("gossip: keyring: %w", err)
		}
	}
	m.view = newView(cfg.Name, m.met, m.suspectTTL, m.log.Warn)
	m.SetTicketKeys(cfg.TicketKeys)
	if err := m.start(); err != nil {
		return nil, err
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.wg.Add(2)
	go m.run()
	go m.nudger()
	return m, nil
}

// start binds the transport and creates memberlist.
func (m *Member) start() error {
	stdlog := newStdLogger(m.log)
	nt, err := newNetTransport(m.cfg.BindAddr, m.cfg.BindPort, m.log)
	if err != nil {
		return fmt.Errorf("gossip: listen %s:%d: %w", m.cfg.BindAddr, m.cfg.BindPort, err)
	}
	m.port = nt.port()
	var keys func() [][]byte
	if m.ring != nil {
		keys = m.ring.GetKeys
	}
	m.tr = newTapTransport(nt, m.cfg.Label, keys, m.view.observe, func(error) { m.met.tapErrors.Inc() })
	m.ml, err = memberlist.Create(m.memberlistConfig(stdlog))
	if err != nil {
		_ = m.tr.Shutdown()
		return fmt.Errorf("gossip: start memberlist: %w", err)
	}
	return nil
}

func (m *Member) memberlistConfig(stdlog *log.Logger) *memberlist.Config {
	c, t := memberlist.DefaultLANConfig(), m.cfg.Timing
	c.Name = m.cfg.Name
	c.BindAddr, c.BindPort = m.cfg.BindAddr, m.port
	c.AdvertiseAddr, c.AdvertisePort = m.cfg.AdvertiseAddr, m.cfg.AdvertisePort
	if c.AdvertisePort == 0 {
		c.AdvertisePort = m.port
	}
	c.Transport = m.tr
	// Messages are pings, acks and small state updates: compressing each
	// (LZW) gained nothing and allocated a fresh coder per message.
	// Compressed messages from other members are still understood.
	c.EnableCompression = false
	c.Label = m.cfg.Label
	c.Keyring = m.ring
	c.Delegate = &delegate{meta: &m.meta, view: m.view, refute: m.refuteCh}
	c.Events = c.Delegate.(*delegate)
	c.Logger = stdlog
	c.ProbeInterval, c.ProbeTimeout, c.IndirectChecks = t.ProbeInterval, t.ProbeTimeout, t.IndirectChecks
	c.SuspicionMult, c.SuspicionMaxTimeoutMult = t.SuspicionMult, t.SuspicionMaxTimeoutMult
	c.GossipInterval, c.GossipNodes, c.RetransmitMult = t.GossipInterval, t.GossipNodes, t.RetransmitMult
	c.PushPullInterval, c.GossipToTheDeadTime, c.TCPTimeout = t.PushPullInterval, t.GossipToTheDeadTime, t.TCPTimeout
	// A sidecar restarted under its old name on a new port may take the
	// name back once the old incarnation has been dead this long.
	c.DeadNodeReclaimTime = 2 * t.SuspicionTimeout(10)
	// Lifeguard (awareness, suspicion confirmations) stays at memberlist's
	// default: AwarenessMaxMultiplier 8.
	return c
}

// suspectTTL bounds how long the view keeps a suspicion memberlist did not
// turn into a death: the suspicion timeout memberlist uses for n members
// (state.go suspectNode) plus a margin.
func (m *Member) suspectTTL(n int) time.Duration {
	t := m.cfg.Timing
	d := t.SuspicionTimeout(n)
	if k := t.SuspicionMult - 2; n-2 >= k {
		d *= time.Duration(t.SuspicionMaxTimeoutMult)
	}
	return d + 10*t.ProbeInterval + time.Second
}

// Port returns the bound gossip port (useful with BindPort 0).
func (m *Member) Port() int { return m.port }

// Addr returns the advertised "ip:port" peers reach this member at.
func (m *Member) Addr() string {
	return m.ml.LocalNode().Address()
}

// Name returns the node name.
func (m *Member) Name() string { return m.cfg.Name }

// Join contacts seeds ("host:port") and merges state with them. It blocks
// for up to Timing.TCPTimeout per unreachable seed and returns how many
// seeds answered; an error only when none did.
func (m *Member) Join(seeds []string) (int, error) {
	if m.closed.Load() {
		return 0, ErrClosed
	}
	seeds = slices.DeleteFunc(slices.Clone(seeds), func(s string) bool { return s == "" || s == m.Addr() })
	if len(seeds) == 0 {
		return 0, nil
	}
	n, err := m.ml.Join(seeds)
	if n == 0 && err != nil {
		return 0, fmt.Errorf("gossip: join %v: %w", seeds, err)
	}
	return n, nil
}

// Leave announces a graceful departure and waits up to timeout for the
// announcement to reach a peer; peers then report this member as left, not
// dead. Call Close afterwards.
func (m *Member) Leave(timeout time.Duration) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if err := m.ml.Leave(timeout); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// Close stops the member without a Leave (peers will suspect it, then
// declare it dead; call Leave first for a graceful exit). Order: the rejoin
// loop, memberlist and its transport, then subscriber goroutines (each
// in-flight callback is waited for), then metrics are unregistered. It may
// wait up to Timing.TCPTimeout for an in-flight re-join or nudge. It is
// idempotent and safe to call concurrently; every call waits.
func (m *Member) Close() error {
	m.closeOnce.Do(func() {
		m.closed.Store(true)
		m.cancel()
		m.wg.Wait()
		if err := m.ml.Shutdown(); err != nil {
			m.closeErr = fmt.Errorf("gossip: shutdown: %w", err)
		}
		m.view.closeSubscribers()
		if m.cfg.Registerer != nil {
			m.met.unregister(m.cfg.Registerer)
		}
	})
	return m.closeErr
}

// Health reports gossip's verdict on an instance. known is false when no
// member has ever claimed the instance (or it has been forgotten, five
// minutes after its member died); whether such an instance is routable is
// the caller's call (shoal: yes, on etcd's word).
func (m *Member) Health(key InstanceKey) (s Status, known bool) { return m.view.health(key) }

// Peers returns a snapshot of every known member, this one included,
// sorted by name. The caller owns the slice.
func (m *Member) Peers() []Peer { return m.view.snapshot() }

// Subscribe calls fn for every member state or health change, starting with
// the current state of every known member. Calls are serial, on a goroutine
// owned by the subscription; fn may block, which only delays its own
// events (coalesced per member meanwhile: the latest state wins). The
// returned cancel stops delivery and waits for an in-flight fn; it must not
// be called from fn. Close cancels every subscription.
func (m *Member) Subscribe(fn func(Event)) (cancel func()) { return m.view.subscribe(fn) }
