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
	// The channel reconnects on the same schedule as the stream.
	opts := append([]grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff: c.cfg.Backoff, MinConnectTimeout: 20 * time.Second,
	})}, c.cfg.DialOptions...)
	conn, err := grpc.NewClient(c.cfg.Server, opts...)
	if err != nil {
		return fmt.Errorf("xdsclient: grpc client for %q: %w", c.cfg.Server, err)
	}
	defer conn.Close()
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
	c.reconnectLoop(ctx, conn)
	return nil
}

// reconnectLoop runs streams until ctx is done. A stream that got a
// response resets the backoff. Delta answered with Unimplemented switches
// to SotW for the rest of the Client's life.
func (c *Client) reconnectLoop(ctx context.Context, conn *grpc.ClientConn) {
	mode, retries := c.cfg.Mode, 0
	for {
		got, err := c.runStream(ctx, conn, mode)
		c.setConnected(false, mode)
		if ctx.Err() != nil {
			return
		}
		if got {
			retries = 0
		}
		if mode == ModeDelta && !got && status.Code(err) == codes.Unimplemented {
			c.log.Warn("xds: server does not implement delta xDS, falling back to SotW")
			mode = ModeSotW
			continue
		}
		c.streamFailed(mode, err)
		d := backoffDelay(c.cfg.Backoff, retries)
		retries++
		if !c.wait(ctx, d) {
			return
		}
		// The channel keeps its own backoff; without a reset the stream
		// fails fast while the channel waits out its next attempt, and the
		// two jittered schedules stack (seconds after the server is back).
		// Reset, the channel connects now and the stream waits for it.
		conn.ResetConnectBackoff()
	}
}

func (c *Client) streamFailed(mode Mode, err error) {
	c.log.Warn("xds: stream failed", "mode", mode, "err", err)
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
