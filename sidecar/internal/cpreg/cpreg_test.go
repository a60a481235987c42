package cpreg

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-mesh/shoal/controlplane/api"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
	registryv1 "github.com/shoal-mesh/shoal/proto/shoal/registry/v1"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/registry/etcdstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, etcdtest.LeakOptions()...) }

const defaultTestTimeout = 30 * time.Second

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startRegistry serves RegistryService over cli on a loopback port, as a
// control plane without authentication does; stop stops it.
func startRegistry(t *testing.T, cli *clientv3.Client) (addr string, stop func()) {
	t.Helper()
	reg, err := api.NewRegistration(api.RegistrationConfig{
		Registrar: etcdstore.NewRegistrar(cli), TrustDomain: spiffeid.RequireTrustDomainFromString("shoal.local"), Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	registryv1.RegisterRegistryServiceServer(gs, reg)
	done := make(chan struct{})
	go func() { gs.Serve(l); close(done) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			gs.Stop()
			<-done
		}
	}
	t.Cleanup(stop)
	return l.Addr().String(), stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// The registration renews through the next control plane when the first
// stops, keeping its lease; registers again when its key is deleted; and
// Deregister deletes the key at once.
func TestRegistrationFailsOverAndRecovers(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	a1, stop1 := startRegistry(t, cli)
	a2, _ := startRegistry(t, cli)
	in := registry.Instance{ID: "web-1", Service: "web", Address: "127.0.0.1", Port: 8080}
	key := registry.InstanceKey("web", "web-1")
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()
	r, err := Register(ctx, Config{
		Servers: []string{a1, a2}, DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		Instance: in, TTL: 2 * time.Second, RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	leaseOf := func() int64 {
		resp, err := cli.Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			return 0
		}
		return resp.Kvs[0].Lease
	}
	first := r.LeaseID()
	if leaseOf() != first || r.Server() != a1 {
		t.Fatalf("after Register: key on lease %x via %s, want lease %x via %s", leaseOf(), r.Server(), first, a1)
	}

	stop1()
	waitFor(t, "renewals through the second control plane", func() bool { return r.Server() == a2 })
	if leaseOf() != first {
		t.Fatalf("after failover the key is on lease %x, want the same lease %x", leaseOf(), first)
	}

	if _, err := cli.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	// The key is written before Register returns the new lease to the
	// registration: wait for both to agree.
	waitFor(t, "registered again after the key was deleted, holding the new lease", func() bool {
		l := leaseOf()
		return l != 0 && l != first && r.LeaseID() == l
	})

	if err := r.Deregister(ctx); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	if leaseOf() != 0 {
		t.Fatalf("the key is still there after Deregister")
	}
}

// A refusal (here: an invalid TTL) is returned at once, not retried.
func TestRegisterReturnsRefusals(t *testing.T) {
	e := etcdtest.Start(t)
	addr, _ := startRegistry(t, e.Client(t))
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()
	_, err := Register(ctx, Config{
		Servers: []string{addr}, DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		Instance: registry.Instance{ID: "web-1", Service: "web", Address: "127.0.0.1", Port: 8080}, TTL: time.Hour, Logger: quiet,
	})
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Register with a 1h TTL = %v (ctx %v), want a refusal at once", err, ctx.Err())
	}
	t.Logf("refused: %v", err)
}
