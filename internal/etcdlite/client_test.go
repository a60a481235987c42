package etcdlite_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/internal/etcdlite"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, etcdtest.LeakOptions()...) }

const defaultTestTimeout = 20 * time.Second

func newClient(t *testing.T, endpoints ...string) *etcdlite.Client {
	t.Helper()
	c, err := etcdlite.New(etcdlite.Config{Endpoints: endpoints, RetryWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("New(%v): %v", endpoints, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// poll checks cond every 20ms until it holds or the test timeout passes.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx := testCtx(t)
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within %s", what, defaultTestTimeout)
		case <-time.After(20 * time.Millisecond): // poll interval
		}
	}
}

func TestNewRejectsBadEndpoints(t *testing.T) {
	tests := []struct {
		name      string
		endpoints []string
		wantErr   string
	}{
		{"no endpoints", nil, "no endpoints"},
		{"no port", []string{"localhost"}, `endpoint "localhost": want host:port`},
		{"URL without port", []string{"http://localhost"}, "want a host:port"},
		{"unknown scheme", []string{"ftp://a:1"}, "scheme ftp is not http, https, unix or unixs"},
		{"no socket path", []string{"unix://"}, "no socket path"},
		{"TLS mixed with plaintext", []string{"https://a:1", "http://b:1"}, "mix TLS (https, unixs) and plaintext"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := etcdlite.New(etcdlite.Config{Endpoints: tc.endpoints})
			if err == nil {
				c.Close()
				t.Fatalf("New(%v) succeeded, want an error", tc.endpoints)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New(%v) = %v, want it to say %q", tc.endpoints, err, tc.wantErr)
			}
		})
	}
}

func TestPutWithLeaseIsWhatClientv3Reads(t *testing.T) {
	e := etcdtest.Start(t)
	ref := e.Client(t)
	c := newClient(t, e.Endpoint())
	ctx := testCtx(t)

	lease, err := c.Grant(ctx, 5*time.Second)
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	ttl, err := ref.TimeToLive(ctx, clientv3.LeaseID(lease))
	if err != nil || ttl.GrantedTTL != 5 {
		t.Fatalf("clientv3 sees lease %x with granted TTL %d (%v), want 5", lease, ttl.GrantedTTL, err)
	}
	rev, err := c.Put(ctx, "/k", []byte("v\x00\xff"), lease)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	got, err := ref.Get(ctx, "/k")
	if err != nil || len(got.Kvs) != 1 {
		t.Fatalf("clientv3 Get = %v, %v", got, err)
	}
	if kv := got.Kvs[0]; string(kv.Value) != "v\x00\xff" || kv.Lease != lease || kv.ModRevision != rev {
		t.Errorf("stored %q lease %x at %d; want %q lease %x at %d (Put's revision)", kv.Value, kv.Lease, kv.ModRevision, "v\x00\xff", lease, rev)
	}
	if ok, at, err := c.Exists(ctx, "/k"); !ok || at < rev || err != nil {
		t.Errorf("Exists(/k) = %v at %d, %v; want true at >= %d", ok, at, err, rev)
	}
	if err := c.Revoke(ctx, lease); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if ok, _, err := c.Exists(ctx, "/k"); ok || err != nil {
		t.Errorf("Exists(/k) after revoking its lease = %v, %v; want false", ok, err)
	}
	if _, err := c.Put(ctx, "/k2", []byte("v"), 0); err != nil {
		t.Fatalf("Put without lease: %v", err)
	}
	if err := c.Delete(ctx, "/k2"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got, _ := ref.Get(ctx, "/k2"); len(got.Kvs) != 0 {
		t.Errorf("/k2 still there after Delete")
	}
}

func TestUnknownLeaseIsLeaseNotFound(t *testing.T) {
	e := etcdtest.Start(t)
	c := newClient(t, e.Endpoint())
	ctx := testCtx(t)
	const unknown = 0x1234
	if err := c.Revoke(ctx, unknown); !errors.Is(err, etcdlite.ErrLeaseNotFound) {
		t.Errorf("Revoke(unknown) = %v, want ErrLeaseNotFound", err)
	}
	if _, err := c.Put(ctx, "/k", []byte("v"), unknown); !errors.Is(err, etcdlite.ErrLeaseNotFound) {
		t.Errorf("Put(lease unknown) = %v, want ErrLeaseNotFound", err)
	}
	if err := c.KeepAlive(ctx, unknown, time.Minute); !errors.Is(err, etcdlite.ErrLeaseNotFound) {
		t.Errorf("KeepAlive(unknown) = %v, want ErrLeaseNotFound", err)
	}
	if _, err := c.Put(ctx, "", []byte("v"), 0); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Put(empty key) = %v, want etcd's InvalidArgument", err)
	}
}

func TestKeepAliveKeepsTheLeaseUntilCancelled(t *testing.T) {
	e := etcdtest.Start(t)
	ref := e.Client(t)
	c := newClient(t, e.Endpoint())
	lease, err := c.Grant(testCtx(t), time.Second) // etcd raises it to its minimum (2s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.KeepAlive(ctx, lease, time.Second) }()
	// Alive through several TTLs.
	for until := time.Now().Add(5 * time.Second); time.Now().Before(until); {
		ttl, err := ref.TimeToLive(testCtx(t), clientv3.LeaseID(lease))
		if err != nil || ttl.TTL <= 0 {
			t.Fatalf("lease TTL %v (%v) while kept alive, want > 0", ttl, err)
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("KeepAlive after cancel = %v, want context.Canceled", err)
	}
}

func TestKeepAliveReportsExpiryWhileEtcdIsDown(t *testing.T) {
	e := etcdtest.Start(t)
	c := newClient(t, e.Endpoint())
	lease, err := c.Grant(testCtx(t), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.KeepAlive(testCtx(t), lease, 2*time.Second) }()
	e.Stop()
	t.Cleanup(e.Restart) // etcdtest's own cleanup stops it again
	select {
	case err := <-done:
		if !errors.Is(err, etcdlite.ErrLeaseExpired) {
			t.Errorf("KeepAlive with etcd down = %v, want ErrLeaseExpired", err)
		}
	case <-time.After(defaultTestTimeout):
		t.Fatal("KeepAlive still running with etcd down past the TTL")
	}
}

func TestCallsWaitForEtcdToComeUp(t *testing.T) {
	e := etcdtest.Start(t)
	e.Stop()
	c := newClient(t, e.Endpoint())
	done := make(chan error, 1)
	go func() {
		_, err := c.Grant(testCtx(t), 5*time.Second)
		done <- err
	}()
	e.Restart()
	if err := <-done; err != nil {
		t.Errorf("Grant started while etcd was down = %v, want success once it is up", err)
	}
}

func TestCloseEndsWaitingCalls(t *testing.T) {
	c := newClient(t, "127.0.0.1:1") // nothing listens there
	done := make(chan error, 2)
	go func() { _, err := c.Grant(testCtx(t), time.Second); done <- err }()
	go func() { done <- c.WaitDeleted(testCtx(t), "/k", 1) }()
	c.Close()
	for range 2 {
		if err := <-done; !errors.Is(err, etcdlite.ErrClosed) {
			t.Errorf("call on a closed client = %v, want ErrClosed", err)
		}
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

func TestWaitDeletedResumesAfterEtcdRestart(t *testing.T) {
	e := etcdtest.Start(t)
	ref := e.Client(t)
	c := newClient(t, e.Endpoint())
	ctx := testCtx(t)
	rev, err := c.Put(ctx, "/k", []byte("v"), 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.WaitDeleted(ctx, "/k", rev) }()
	e.Stop()
	e.Restart()
	poll(t, "delete after the restart", func() bool {
		_, err := ref.Delete(ctx, "/k")
		return err == nil
	})
	if err := <-done; err != nil {
		t.Errorf("WaitDeleted across a restart = %v, want nil (the deletion)", err)
	}
}
