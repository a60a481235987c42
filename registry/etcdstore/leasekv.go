package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-mesh/shoal/registry"
)

// Register is registry.Register over the Store's clientv3 client; a nil
// opts.Logger means the Store's.
func (s *Store) Register(ctx context.Context, in registry.Instance, opts registry.RegisterOptions) (*registry.Registration, error) {
	if opts.Logger == nil {
		opts.Logger = s.log
	}
	return registry.Register(ctx, leaseKV{s.cli}, in, opts)
}

var _ registry.LeaseKV = leaseKV{}

// leaseKV adapts clientv3 to registry.LeaseKV for the control plane, the
// CLI and tests; the sidecar uses internal/etcdlite instead.
type leaseKV struct{ cli *clientv3.Client }

func (c leaseKV) Grant(ctx context.Context, ttl time.Duration) (int64, error) {
	resp, err := c.cli.Grant(ctx, int64((ttl+time.Second-1)/time.Second))
	if err != nil {
		return 0, fmt.Errorf("grant lease: %w", err)
	}
	return int64(resp.ID), nil
}

func (c leaseKV) Put(ctx context.Context, key string, value []byte, lease int64) (int64, error) {
	resp, err := c.cli.Put(ctx, key, string(value), clientv3.WithLease(clientv3.LeaseID(lease)))
	if err != nil {
		return 0, fmt.Errorf("put %q: %w", key, err)
	}
	return resp.Header.Revision, nil
}

func (c leaseKV) KeepAlive(ctx context.Context, lease int64, _ time.Duration) error {
	ka, err := c.cli.KeepAlive(ctx, clientv3.LeaseID(lease))
	if err != nil {
		return fmt.Errorf("keepalive lease %x: %w", lease, err)
	}
	for range ka { // closed when the lease is lost or ctx is done
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("lease keepalive ended (expired, revoked or etcd unreachable past the TTL)")
}

func (c leaseKV) WaitDeleted(ctx context.Context, key string, rev int64) error {
	next := rev + 1
	for {
		wch := c.cli.Watch(clientv3.WithRequireLeader(ctx), key, clientv3.WithRev(next), clientv3.WithFilterPut())
		for resp := range wch {
			switch {
			case len(resp.Events) > 0: // deletions only: puts are filtered out
				return nil
			case resp.CompactRevision != 0:
				// The history since next is gone: look at the key itself.
				g, err := c.cli.Get(ctx, key, clientv3.WithCountOnly())
				if err == nil && g.Count == 0 {
					return nil
				}
				if err == nil {
					next = g.Header.Revision + 1
				}
			case resp.Canceled && !errors.Is(resp.Err(), rpctypes.ErrNoLeader):
				return fmt.Errorf("watch %q: %w", key, resp.Err())
			}
		}
		// The channel closed: ctx is done, or the watch ended (compaction,
		// no leader) and is started again.
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (c leaseKV) Revoke(ctx context.Context, lease int64) error {
	if _, err := c.cli.Revoke(ctx, clientv3.LeaseID(lease)); err != nil {
		return fmt.Errorf("revoke lease %x: %w", lease, err)
	}
	return nil
}

func (c leaseKV) Delete(ctx context.Context, key string) error {
	if _, err := c.cli.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	return nil
}
