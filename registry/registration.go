package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// DefaultTTL is the lease TTL of a registration.
const DefaultTTL = 10 * time.Second

// LeaseKV is the part of an etcd client a Registration uses: the whole
// registration protocol, hence more methods than a consumer interface
// usually has. The sidecar passes internal/etcdlite's client;
// etcdstore.Store.Register adapts clientv3. Implementations must be safe for
// concurrent use; every method blocks until done or ctx ends.
type LeaseKV interface {
	// Grant creates a lease of ttl (rounded up to seconds) and returns its ID.
	Grant(ctx context.Context, ttl time.Duration) (lease int64, err error)
	// Put writes key=value bound to lease and returns the revision of the
	// write. value is not retained.
	Put(ctx context.Context, key string, value []byte, lease int64) (rev int64, err error)
	// KeepAlive renews lease, granted with ttl, until ctx is done (it
	// returns ctx's error) or the lease is lost (it returns why): etcd says
	// it is gone, or no renewal succeeded for a whole TTL.
	KeepAlive(ctx context.Context, lease int64, ttl time.Duration) error
	// WaitDeleted returns nil once key is deleted at a revision after rev;
	// otherwise ctx's error, or why it cannot watch key.
	WaitDeleted(ctx context.Context, key string, rev int64) error
	// Revoke revokes lease, deleting the keys bound to it.
	Revoke(ctx context.Context, lease int64) error
	// Delete deletes key.
	Delete(ctx context.Context, key string) error
}

// RegisterOptions tune a registration; the zero value uses the defaults.
type RegisterOptions struct {
	// TTL of the lease; zero means DefaultTTL. It is rounded up to seconds
	// and etcd enforces its minimum.
	TTL time.Duration
	// RetryMin and RetryMax bound the jittered backoff between attempts to
	// register again after the lease was lost; zero means 200ms and 5s.
	RetryMin, RetryMax time.Duration
	// Logger receives the registration's state changes; nil means
	// slog.Default() with component=registry.
	Logger *slog.Logger
}

// errKeyDeleted is why a registration whose key was deleted is renewed.
var errKeyDeleted = errors.New("key deleted")

// Registration keeps one instance registered: it keeps its lease alive and,
// when the lease is lost (expired while etcd was unreachable, revoked,
// "requested lease not found" after a restore — etcd-io/etcd#9395) or the
// key is deleted, grants a new lease and writes the key again, with backoff,
// until Deregister or Close. Its methods are safe for concurrent use.
type Registration struct {
	cli   LeaseKV
	inst  Instance
	value []byte
	key   string
	ttl   time.Duration // opts.TTL rounded up to seconds
	opts  RegisterOptions
	log   *slog.Logger

	cancel context.CancelFunc
	done   chan struct{} // closed when the keepalive goroutine exits

	// mu guards lease.
	mu    sync.Mutex
	lease int64

	stopOnce sync.Once
	stopErr  error
}

// Register validates in, writes it under its key with a new lease from cli
// and keeps it registered in the background. It returns once the first
// write succeeded, or the error (nothing is left behind then). cli must
// outlive the Registration.
func Register(ctx context.Context, cli LeaseKV, in Instance, opts RegisterOptions) (*Registration, error) {
	if cli == nil {
		return nil, errors.New("registry: Register needs an etcd client")
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	in.Normalize()
	value, err := in.Marshal()
	if err != nil {
		return nil, fmt.Errorf("registry: encode instance: %w", err)
	}
	opts.defaults()
	r := &Registration{
		cli: cli, inst: in, value: value, key: InstanceKey(in.Service, in.ID), opts: opts,
		ttl:  (opts.TTL + time.Second - 1) / time.Second * time.Second,
		log:  opts.Logger.With("instance", in.Service+"/"+in.ID),
		done: make(chan struct{}),
	}
	lease, rev, err := r.put(ctx)
	if err != nil {
		return nil, err
	}
	r.lease = lease
	lctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.run(lctx, lease, rev)
	return r, nil
}

func (o *RegisterOptions) defaults() {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 200 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default().With("component", "registry")
	}
}

// Instance returns the registered instance (defaults filled).
func (r *Registration) Instance() Instance { return r.inst }

// LeaseID returns the current lease.
func (r *Registration) LeaseID() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lease
}

// put grants a lease and writes the key bound to it; it returns the lease
// and the revision of the write.
func (r *Registration) put(ctx context.Context) (lease, rev int64, err error) {
	lease, err = r.cli.Grant(ctx, r.ttl)
	if err != nil {
		return 0, 0, fmt.Errorf("registry: register %q: %w", r.key, err)
	}
	if rev, err = r.cli.Put(ctx, r.key, r.value, lease); err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		r.cli.Revoke(rctx, lease) // best effort: it lapses within the TTL anyway
		return 0, 0, fmt.Errorf("registry: register %q: %w", r.key, err)
	}
	return lease, rev, nil
}

// run owns the keepalive until ctx is done.
func (r *Registration) run(ctx context.Context, lease, rev int64) {
	defer close(r.done)
	for {
		reason := r.hold(ctx, lease, rev)
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("registration lost; registering again", "reason", reason, "lease", lease)
		var err error
		if lease, rev, err = r.reregister(ctx, lease); err != nil {
			return // ctx done
		}
		r.log.Info("registered again", "lease", lease)
	}
}

// hold keeps lease alive and watches the key (written at rev) until the
// lease is lost, the key is deleted or ctx is done, and says why it
// returned.
func (r *Registration) hold(ctx context.Context, lease, rev int64) error {
	hctx, cancel := context.WithCancel(ctx)
	// lost carries why the registration is lost; one send at most per
	// goroutine below, so they never block.
	lost := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Go(func() { lost <- r.cli.KeepAlive(hctx, lease, r.ttl) })
	wg.Go(func() {
		err := r.cli.WaitDeleted(hctx, r.key, rev)
		switch {
		case err == nil:
			lost <- errKeyDeleted
		case hctx.Err() == nil:
			// The watch is only the fast path for deletions; the lease still
			// holds the registration.
			r.log.Warn("cannot watch the instance key; relying on the lease alone", "err", err)
		}
	})
	var reason error
	select {
	case reason = <-lost:
	case <-ctx.Done():
		reason = ctx.Err()
	}
	cancel()
	wg.Wait()
	return reason
}

// reregister retries put with jittered exponential backoff until it
// succeeds or ctx is done; the old lease is revoked best-effort.
func (r *Registration) reregister(ctx context.Context, old int64) (lease, rev int64, err error) {
	backoff := r.opts.RetryMin
	for {
		actx, cancel := context.WithTimeout(ctx, r.opts.TTL)
		lease, rev, err = r.put(actx)
		cancel()
		if err == nil {
			r.mu.Lock()
			r.lease = lease
			r.mu.Unlock()
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			r.cli.Revoke(rctx, old) // may already be gone
			cancel()
			return lease, rev, nil
		}
		r.log.Warn("register failed; retrying", "err", err, "backoff", backoff)
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, 0, ctx.Err()
		case <-t.C:
		}
		backoff = min(r.opts.RetryMax, backoff*2)
	}
}

// Deregister stops the keepalive and revokes the lease, which deletes the
// key at once. If revoking fails it deletes the key; if that fails too the
// key lapses with its lease within the TTL and the error is returned.
// Calling it again returns the first result.
func (r *Registration) Deregister(ctx context.Context) error {
	r.stopOnce.Do(func() {
		r.cancel()
		<-r.done
		err := r.cli.Revoke(ctx, r.LeaseID())
		if err == nil {
			return
		}
		if derr := r.cli.Delete(ctx, r.key); derr != nil {
			r.stopErr = fmt.Errorf("registry: deregister %q: %w", r.key, errors.Join(err, derr))
		}
	})
	return r.stopErr
}

// Close deregisters with a 5s timeout.
func (r *Registration) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.Deregister(ctx)
}
