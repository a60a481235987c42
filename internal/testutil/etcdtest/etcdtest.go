// Package etcdtest starts a real embedded etcd for tests, on free loopback
// ports and a temporary data directory, and can stop and restart it on the
// same data directory and ports to exercise reconnection.
package etcdtest

import (
	"context"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/shoal-mesh/shoal/internal/etcdclient"
	"github.com/shoal-mesh/shoal/internal/etcdserver"
	"github.com/shoal-mesh/shoal/internal/freeport"
)

// Etcd is a test etcd member.
type Etcd struct {
	t         testing.TB
	dir       string
	clientURL string
	peerURL   string

	mu  sync.Mutex
	srv *etcdserver.Server // nil while stopped
}

// Start starts etcd and registers its shutdown with t.Cleanup.
func Start(t testing.TB) *Etcd {
	t.Helper()
	e := &Etcd{
		t:         t,
		dir:       t.TempDir(),
		clientURL: "http://" + FreeAddr(t),
		peerURL:   "http://" + FreeAddr(t),
	}
	e.Restart()
	t.Cleanup(e.Stop)
	return e
}

// Endpoint is the client URL, e.g. "http://127.0.0.1:40123".
func (e *Etcd) Endpoint() string { return e.clientURL }

// Stop stops the server (no-op if stopped). Its data directory stays.
func (e *Etcd) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv != nil {
		e.srv.Close()
		e.srv = nil
	}
}

// Restart starts the server again on the same data directory and URLs.
func (e *Etcd) Restart() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv != nil {
		return
	}
	var err error
	// The just-closed ports may take a moment to be released.
	for range 50 {
		e.srv, err = etcdserver.Start(etcdserver.Config{Dir: e.dir, ClientURL: e.clientURL, PeerURL: e.peerURL})
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("etcdtest: start: %v", err)
}

// Client returns a new client closed at test cleanup.
func (e *Etcd) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := etcdclient.New([]string{e.clientURL})
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Compact compacts etcd's history up to its current revision.
func (e *Etcd) Compact(t testing.TB, cli *clientv3.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "compaction-probe")
	if err != nil {
		t.Fatalf("etcdtest: get revision: %v", err)
	}
	rev := resp.Header.Revision
	if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("etcdtest: compact: %v", err)
	}
	return rev
}

// FreeAddr returns a free loopback host:port from internal/freeport
// (outside the kernel's ephemeral range, never handed out twice).
func FreeAddr(t testing.TB) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	return a
}

// LeakOptions are the goleak options for packages that start embedded etcd.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		// etcd's client and server start package-level goroutines that live
		// for the process (gRPC resolver and log flushers, zap's sampler).
		goleak.IgnoreTopFunction("go.etcd.io/etcd/pkg/v3/logutil.(*MergeLogger).outputLoop"),
		goleak.IgnoreTopFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		// Packages that start etcd usually run gossip too: memberlist's
		// Shutdown does not wait for an in-flight probe (state.go probeNode
		// and its TCP fallback), which ends at the probe deadline.
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).sendPingAndWaitForAck"),
	}
}

// Client returns a client for an etcd at endpoint (host:port or URL),
// closed at test cleanup.
func Client(t testing.TB, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := etcdclient.New([]string{endpoint})
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
