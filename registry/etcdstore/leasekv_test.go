package etcdstore

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-mesh/shoal/internal/etcdlite"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
	"github.com/shoal-mesh/shoal/registry"
)

// The LeaseKV contract, on both implementations: what Registration relies
// on when it decides the registration is lost.

func leaseKVs(t *testing.T, e *etcdtest.Etcd) map[string]registry.LeaseKV {
	t.Helper()
	lite, err := etcdlite.New(etcdlite.Config{Endpoints: []string{e.Endpoint()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	return map[string]registry.LeaseKV{"clientv3": leaseKV{e.Client(t)}, "etcdlite": lite}
}

const shortTimeout = 200 * time.Millisecond // negative checks

func TestWaitDeletedSeesDeletionsAfterTheRevisionOnly(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	for name, kv := range leaseKVs(t, e) {
		t.Run(name, func(t *testing.T) {
			key := "/t/" + name
			rev, err := kv.Put(t.Context(), key, []byte("v"), 0)
			if err != nil {
				t.Fatal(err)
			}
			// Deleted and written again before the watch starts: not missed.
			cli.Delete(t.Context(), key)
			cli.Put(t.Context(), key, "v2")
			if err := kv.WaitDeleted(t.Context(), key, rev); err != nil {
				t.Errorf("WaitDeleted after a deletion past rev = %v, want nil", err)
			}
			rev2, _ := kv.Put(t.Context(), key, []byte("v3"), 0)
			ctx, cancel := context.WithTimeout(t.Context(), shortTimeout)
			defer cancel()
			if err := kv.WaitDeleted(ctx, key, rev2); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("WaitDeleted with no deletion since rev = %v, want the context's deadline", err)
			}
		})
	}
}

func TestWaitDeletedAcrossCompactedHistory(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	for name, kv := range leaseKVs(t, e) {
		t.Run(name, func(t *testing.T) {
			key := "/t/" + name
			rev, err := kv.Put(t.Context(), key, []byte("v"), 0)
			if err != nil {
				t.Fatal(err)
			}
			cli.Put(t.Context(), key, "v2")
			e.Compact(t, cli) // rev+1 is gone from the history
			ctx, cancel := context.WithTimeout(t.Context(), shortTimeout)
			defer cancel()
			if err := kv.WaitDeleted(ctx, key, rev); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("WaitDeleted while key exists = %v, want the context's deadline", err)
			}
			cli.Delete(t.Context(), key)
			e.Compact(t, cli) // and so is the deletion
			if err := kv.WaitDeleted(t.Context(), key, rev); err != nil {
				t.Errorf("WaitDeleted after a compacted deletion = %v, want nil", err)
			}
		})
	}
}

func TestKeepAliveEndsWhenTheLeaseIsRevoked(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	for name, kv := range leaseKVs(t, e) {
		t.Run(name, func(t *testing.T) {
			lease, err := kv.Grant(t.Context(), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- kv.KeepAlive(t.Context(), lease, time.Second) }()
			if _, err := cli.Revoke(t.Context(), clientv3.LeaseID(lease)); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err == nil {
					t.Error("KeepAlive returned nil, want why the lease is lost")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("KeepAlive still running 10s after its lease was revoked")
			}
		})
	}
}
