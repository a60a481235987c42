package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultTTL is the lease TTL of a registration.
const DefaultTTL = 10 * time.Second

// RegisterOptions tune a registration; the zero value uses the defaults.
type RegisterOptions struct {
	// TTL of the lease; zero means DefaultTTL. etcd rounds it to seconds
	// and its minimum is enforced by the server.
	TTL time.Duration
	// RetryMin and RetryMax bound the jittered backoff between attempts to
	// register again after the lease was lost; zero means 200ms and 5s.
	RetryMin, RetryMax time.Duration
}

// Registration keeps one instance registered: it keeps its lease alive and,
// when the lease is lost (expired while etcd was unreachable, revoked,
// "requested lease not found" after a restore — etcd-io/etcd#9395) or the
// key is deleted, grants a new lease and writes the key again, with backoff,
// until Deregister or Close. Its methods are safe for concurrent use.
type Registration struct {
	store *Store
	inst  Instance
	value []byte
	key   string
	opts  RegisterOptions
	log   *slog.Logger

	cancel context.CancelFunc
	done   chan struct{} // closed when the keepalive goroutine exits

	// mu guards lease.
	mu    sync.Mutex
	lease clientv3.LeaseID

	stopOnce sync.Once
	stopErr  error
}

// Register validates in, writes it under its key with a new lease and keeps
// it registered in the background. It returns once the first write
// succeeded, or ctx's error (nothing is left behind then).
func (s *Store) Register(ctx context.Context, in Instance, opts RegisterOptions) (*Registration, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	in.Normalize()
	value, err := in.Marshal()
	if err != nil {
		return nil, fmt.Errorf("registry: encode instance: %w", err)
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 200 * time.Millisecond
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 5 * time.Second
	}
	r := &Registration{
		store: s, inst: in, value: value, key: InstanceKey(in.Service, in.ID), opts: opts,
		log:  s.log.With("instance", in.Service+"/"+in.ID),
		done: make(chan struct{}),
	}
	lease, err := r.put(ctx)
	if err != nil {
		return nil, err
	}
	r.lease = lease
	lctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.run(lctx, lease)
	return r, nil
}

// Instance returns the registered instance (defaults filled).
func (r *Registration) Instance() Instance { return r.inst }

// LeaseID returns the current lease.
func (r *Registration) LeaseID() clientv3.LeaseID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lease
}

// put grants a lease and writes the key bound to it.
func (r *Registration) put(ctx context.Context) (clientv3.LeaseID, error) {
	cli := r.store.cli
	ttl := int64((r.opts.TTL + time.Second - 1) / time.Second)
	g, err := cli.Grant(ctx, ttl)
	if err != nil {
		return 0, fmt.Errorf("registry: grant lease: %w", err)
	}
	if _, err := cli.Put(ctx, r.key, string(r.value), clientv3.WithLease(g.ID)); err != nil {
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		cli.Revoke(rctx, g.ID)
		return 0, fmt.Errorf("registry: put %q: %w", r.key, err)
	}
	return g.ID, nil
}

// run owns the keepalive until ctx is done.
func (r *Registration) run(ctx context.Context, lease clientv3.LeaseID) {
	defer close(r.done)
	for {
		reason := r.keepAlive(ctx, lease)
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("registration lost; registering again", "reason", reason, "lease", int64(lease))
		var err error
		if lease, err = r.reregister(ctx, lease); err != nil {
			return // ctx done
		}
		r.log.Info("registered again", "lease", int64(lease))
	}
}

// keepAlive keeps lease alive until it is lost or the key is deleted, and
// says why it returned.
func (r *Registration) keepAlive(ctx context.Context, lease clientv3.LeaseID) string {
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ka, err := r.store.cli.KeepAlive(kctx, lease)
	if err != nil {
		return err.Error()
	}
	wch := r.store.cli.Watch(clientv3.WithRequireLeader(kctx), r.key)
	for {
		select {
		case _, ok := <-ka:
			if !ok {
				return "lease keepalive ended (expired, revoked or etcd unreachable past the TTL)"
			}
		case resp, ok := <-wch:
			if !ok {
				// The watch is only a fast path for deletions; keep the lease
				// and stop watching.
				wch = nil
				continue
			}
			for _, ev := range resp.Events {
				if ev.Type == mvccpb.DELETE {
					return "key deleted"
				}
			}
			if resp.Err() != nil {
				wch = r.store.cli.Watch(clientv3.WithRequireLeader(kctx), r.key, clientv3.WithRev(resp.Header.Revision+1))
			}
		case <-ctx.Done():
			return ctx.Err().Error()
		}
	}
}

// reregister retries put with jittered exponential backoff until it
// succeeds or ctx is done; the old lease is revoked best-effort.
func (r *Registration) reregister(ctx context.Context, old clientv3.LeaseID) (clientv3.LeaseID, error) {
	backoff := r.opts.RetryMin
	for {
		actx, cancel := context.WithTimeout(ctx, r.opts.TTL)
		lease, err := r.put(actx)
		cancel()
		if err == nil {
			r.mu.Lock()
			r.lease = lease
			r.mu.Unlock()
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			r.store.cli.Revoke(rctx, old) // may already be gone
			cancel()
			return lease, nil
		}
		r.log.Warn("register failed; retrying", "err", err, "backoff", backoff)
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
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
		lease := r.LeaseID()
		_, err := r.store.cli.Revoke(ctx, lease)
		if err == nil {
			return
		}
		if _, derr := r.store.cli.Delete(ctx, r.key); derr != nil {
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
