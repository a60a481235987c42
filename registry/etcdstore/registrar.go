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

// Registrar errors; the control plane's API maps them to status codes.
var (
	// ErrRegistrationGone means the lease expired or was revoked, or the
	// instance's key was deleted: the holder must register again.
	ErrRegistrationGone = errors.New("etcdstore: registration gone (lease expired or instance key deleted); register again")
	// ErrLeaseMismatch means the lease holds keys other than the named
	// instance's: it is not that registration's lease.
	ErrLeaseMismatch = errors.New("etcdstore: the lease does not hold (only) this instance's key")
)

// TTL bounds of a registration made through a Registrar.
const (
	MinRegistrationTTL = 2 * time.Second
	MaxRegistrationTTL = 5 * time.Minute
)

// Registrar writes instances for their holders, each under an etcd lease
// of its own (the control plane's RegistryService, issue 14). It keeps no
// state: a lease lives in etcd, so another Registrar over the same etcd
// (another control plane, or this one restarted) renews or revokes it.
// Safe for concurrent use.
type Registrar struct {
	cli *clientv3.Client
}

// NewRegistrar returns a Registrar over cli; the caller owns cli.
func NewRegistrar(cli *clientv3.Client) *Registrar { return &Registrar{cli: cli} }

// Register validates in (filling defaults), grants a lease of ttl (zero
// means registry.DefaultTTL; rounded up to seconds) and writes in's key
// bound to it. It returns the lease and its TTL as granted. On error
// nothing is left behind (a granted lease is revoked). A *registry.
// FieldError names an invalid field.
func (r *Registrar) Register(ctx context.Context, in registry.Instance, ttl time.Duration) (int64, time.Duration, error) {
	if err := in.Validate(); err != nil {
		return 0, 0, err
	}
	if ttl == 0 {
		ttl = registry.DefaultTTL
	}
	if ttl < MinRegistrationTTL || ttl > MaxRegistrationTTL {
		return 0, 0, &registry.FieldError{Field: "ttl", Reason: fmt.Sprintf("%s is outside %s-%s", ttl, MinRegistrationTTL, MaxRegistrationTTL)}
	}
	in.Normalize()
	value, err := in.Marshal()
	if err != nil {
		return 0, 0, fmt.Errorf("etcdstore: encode instance: %w", err)
	}
	key := registry.InstanceKey(in.Service, in.ID)
	lease, err := r.cli.Grant(ctx, int64((ttl+time.Second-1)/time.Second))
	if err != nil {
		return 0, 0, fmt.Errorf("etcdstore: register %q: grant: %w", key, err)
	}
	if _, err := r.cli.Put(ctx, key, string(value), clientv3.WithLease(lease.ID)); err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		r.cli.Revoke(rctx, lease.ID) // best effort: it lapses within the TTL anyway
		return 0, 0, fmt.Errorf("etcdstore: register %q: %w", key, err)
	}
	return int64(lease.ID), time.Duration(lease.TTL) * time.Second, nil
}

// KeepAlive renews lease, which must hold service/id's key and nothing
// else, and returns its TTL. ErrRegistrationGone means register again
// (an empty lease left by a deleted key is revoked first);
// ErrLeaseMismatch that the lease is another registration's.
func (r *Registrar) KeepAlive(ctx context.Context, lease int64, service, id string) (time.Duration, error) {
	keys, err := r.keys(ctx, lease)
	if err != nil {
		return 0, err
	}
	switch {
	case len(keys) == 0:
		r.cli.Revoke(ctx, clientv3.LeaseID(lease)) // the key was deleted; the lease is useless
		return 0, ErrRegistrationGone
	case !holdsOnly(keys, registry.InstanceKey(service, id)):
		return 0, ErrLeaseMismatch
	}
	resp, err := r.cli.KeepAliveOnce(ctx, clientv3.LeaseID(lease))
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return 0, ErrRegistrationGone
	case err != nil:
		return 0, fmt.Errorf("etcdstore: keepalive lease %x: %w", lease, err)
	}
	return time.Duration(resp.TTL) * time.Second, nil
}

// Deregister revokes lease, deleting service/id's key. A lease already
// gone is not an error; a lease that holds other keys is ErrLeaseMismatch
// (and nothing is revoked).
func (r *Registrar) Deregister(ctx context.Context, lease int64, service, id string) error {
	keys, err := r.keys(ctx, lease)
	switch {
	case errors.Is(err, ErrRegistrationGone):
		return nil
	case err != nil:
		return err
	case len(keys) > 0 && !holdsOnly(keys, registry.InstanceKey(service, id)):
		return ErrLeaseMismatch
	}
	if _, err := r.cli.Revoke(ctx, clientv3.LeaseID(lease)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("etcdstore: revoke lease %x: %w", lease, err)
	}
	return nil
}

// keys returns the keys attached to lease; ErrRegistrationGone when the
// lease does not exist (any more).
func (r *Registrar) keys(ctx context.Context, lease int64) ([][]byte, error) {
	resp, err := r.cli.TimeToLive(ctx, clientv3.LeaseID(lease), clientv3.WithAttachedKeys())
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return nil, ErrRegistrationGone
	case err != nil:
		return nil, fmt.Errorf("etcdstore: lease %x: %w", lease, err)
	case resp.TTL <= 0:
		return nil, ErrRegistrationGone
	}
	return resp.Keys, nil
}

func holdsOnly(keys [][]byte, key string) bool {
	return len(keys) == 1 && string(keys[0]) == key
}
