package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/internal/xdslimit"
)

// Client is an ADS client for one sidecar. Create it with New and run it
// with Run; Status is safe for concurrent use.
type Client struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	notify *notifier
	// running guards against a second Run.
	running atomic.Bool

	// mu guards status.
	mu     sync.Mutex
	status Status

	// The fields below are owned by the Run goroutine.

	// st holds the last good resources.
	st *store
	// delivered is set once a snapshot was delivered; deliveredGen is the
	// store generation it carried.
	delivered    bool
	deliveredGen int64
	// saved is the snapshot loaded from StateDir, savedGen the store
	// generation after loading it; nil once anything was delivered.
	saved    *Snapshot
	savedGen int64
	// settle bounds how long an incomplete snapshot is held back.
	settle timer
	// initial bounds the wait for the server before saved is delivered.
	initial timer
}

// New validates cfg and returns a Client. It does not connect.
func New(cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("xdsclient: register metrics: %w", err)
	}
	c := &Client{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "xds", "node", cfg.Node.GetId()),
		m:      m,
		st:     newStore(cfg.Listeners),
		status: Status{Mode: cfg.Mode.String(), Types: map[string]TypeStatus{}},
	}
	c.notify = newNotifier(c.deliverNow, m.coalesced.Inc)
	return c, nil
}

// Run connects to the server and keeps the subscriptions alive,
// reconnecting with jittered exponential backoff, until ctx is done; then
// it returns nil once its goroutines (including an OnUpdate in progress)
// have returned. It first loads Config.StateDir, delivering the saved
// snapshot if the server cannot be reached or has not produced a complete
// snapshot within Config.InitialFetchTimeout. Run may be called once.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("xdsclient: Run called more than once")
	}
	conns, err := c.dialAll()
	if err != nil {
		return err
	}
	defer func() {
		for _, cc := range conns {
			cc.Close()
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { c.notify.run(ctx) })
	defer func() {
		cancel()
		wg.Wait()
		c.settle.stop()
		c.initial.stop()
	}()
	c.loadSaved()
	c.reconnectLoop(ctx, conns)
	return nil
}

// dialAll returns one client channel per server (Server, then
// FallbackServers). grpc.NewClient does not connect: a channel is only
// used once its server's turn comes.
func (c *Client) dialAll() ([]*grpc.ClientConn, error) {
	// The channel reconnects on the same schedule as the stream.
	// The receive limit is what the control plane may send (xdslimit), not
	// gRPC's 4 MiB default: a larger response failed the stream over and
	// over, so no later change reached this proxy (issue 16).
	opts := append([]grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff: c.cfg.Backoff, MinConnectTimeout: 20 * time.Second,
	}), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(xdslimit.MaxMessageSize))}, c.cfg.DialOptions...)
	var conns []*grpc.ClientConn
	for _, target := range c.servers() {
		cc, err := grpc.NewClient(target, opts...)
		if err != nil {
			for _, prev := range conns {
				prev.Close()
			}
			return nil, fmt.Errorf("xdsclient: grpc client for %q: %w", target, err)
		}
		conns = append(conns, cc)
	}
	return conns, nil
}

// servers returns Server followed by FallbackServers.
func (c *Client) servers() []string {
	return append([]string{c.cfg.Server}, c.cfg.FallbackServers...)
}

// reconnectLoop runs streams until ctx is done. A stream that got a
// response resets the backoff. Delta answered with Unimplemented switches
// to SotW for the rest of the Client's life.
//
// With several servers, a failed stream moves to the next server at once,
// as long as some server has not been tried since the last stream that
// got a response; once every server failed in turn, it backs off (jittered
// exponential, as with one server) before the next round. Resources are
// kept across servers: a delta stream to the next server resumes with
// initial_resource_versions, and the last good snapshot stays in use
// meanwhile (static stability). The servers are peers (stateless control
// planes over one etcd), so the client stays on one that works rather
// than returning to the first (unlike gRFC A71's primary/fallback).
func (c *Client) reconnectLoop(ctx context.Context, conns []*grpc.ClientConn) {
	servers := c.servers()
	mode, retries, cur, failed := c.cfg.Mode, 0, 0, 0
	for {
		c.updateStatus(func(s *Status) { s.Server = servers[cur] })
		got, err := c.runStream(ctx, conns[cur], mode)
		c.setConnected(false, mode)
		if ctx.Err() != nil {
			return
		}
		if got {
			retries, failed = 0, 0
		}
		if mode == ModeDelta && !got && status.Code(err) == codes.Unimplemented {
			c.log.Warn("xds: server does not implement delta xDS, falling back to SotW", "server", servers[cur])
			mode = ModeSotW
			continue
		}
		c.streamFailed(mode, servers[cur], err)
		failed++
		next := (cur + 1) % len(conns)
		if failed < len(conns) {
			c.log.Warn("xds: failing over to the next control plane", "from", servers[cur], "to", servers[next])
			c.m.failovers.Inc()
			cur = next
			conns[cur].ResetConnectBackoff()
			continue
		}
		failed = 0
		d := backoffDelay(c.cfg.Backoff, retries)
		retries++
		if !c.wait(ctx, d) {
			return
		}
		cur = next
		// The channel keeps its own backoff; without a reset the stream
		// fails fast while the channel waits out its next attempt, and the
		// two jittered schedules stack (seconds after the server is back).
		// Reset, the channel connects now and the stream waits for it.
		conns[cur].ResetConnectBackoff()
	}
}

func (c *Client) streamFailed(mode Mode, server string, err error) {
	c.log.Warn("xds: stream failed", "server", server, "mode", mode, "err", err)
	c.m.streams.WithLabelValues(mode.String()).Inc()
	c.updateStatus(func(s *Status) { s.LastError = err.Error() })
	c.deliverSaved()
}

// wait sleeps d while still serving the settle and initial timers, and
// reports false if ctx ended first.
func (c *Client) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-c.settle.C():
			c.settleExpired()
		case <-c.initial.C():
			c.deliverSaved()
		}
	}
}

// loadSaved seeds the store from Config.StateDir, so that delta streams
// send initial_resource_versions, and arms the initial-fetch timer. A
// missing file is normal; a corrupt one is logged and ignored.
func (c *Client) loadSaved() {
	if c.cfg.StateDir == "" {
		return
	}
	st, err := loadStore(c.cfg.StateDir, c.cfg.Listeners, c.cfg.Validate)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return
	case err != nil:
		c.log.Warn("xds: ignoring saved state", "dir", c.cfg.StateDir, "err", err)
		return
	}
	c.st, c.savedGen = st, st.gen
	c.saved = newSnapshot(st)
	c.saved.FromState = true
	c.initial.arm(c.cfg.InitialFetchTimeout)
}
