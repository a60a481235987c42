package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-mesh/shoal/e2e/harness"
	"github.com/shoal-mesh/shoal/registry"
)

// fillerRevisions and fillerBytes size the burst of short-lived instances
// the compaction scenario writes while the control plane is stopped: more
// than etcd buffers for a stalled watch stream (128 responses in its
// channel, then gRPC's 64 KiB write quota and 64 KiB flow-control window),
// so etcd parks the control plane's watcher, and once compacted can only
// answer it "compacted": the control plane must re-list.
const (
	fillerRevisions = 400
	fillerBytes     = 4 << 10
)

// Issue 6: compaction while the control plane is paused. Control plane
// "etcd" is only an etcd; cp serves the mesh from it (--etcd-endpoints).
// With cp stopped (SIGSTOP), registrations churn (web-1..3 deregister,
// web-7..9 register, web-4 moves, web-ghost comes and goes, and a burst
// of short-lived "filler" instances), etcd is compacted (physically) past
// all of it, and cp continues (SIGCONT). The number: within 5 s cp's view
// (RegistryService.ListInstances) and a client sidecar's routing equal
// etcd's Get: 0 lost, 0 stale.
func TestCompactionWhileControlPlanePaused(t *testing.T) {
	t.Parallel()
	etcd := harness.StartControlPlane(t)
	cp := harness.StartControlPlaneOnEtcd(t, etcd)
	cli := etcd.EtcdClient(t)
	ctx, cancel := context.WithTimeout(t.Context(), harness.DefaultTimeout)
	defer cancel()
	port := 30000 + harness.FreePort(t)%20000 // registered, never dialed
	web := func(id string, offset int) clientv3.Op {
		return harness.PutInstance(t, registry.Instance{ID: id, Service: "web", Address: "127.0.0.1", Port: port + offset})
	}
	var ops []clientv3.Op
	for i := 1; i <= 6; i++ {
		ops = append(ops, web(fmt.Sprintf("web-%d", i), i))
	}
	if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		t.Fatal(err)
	}
	client := harness.StartSidecar(t, harness.SidecarOptions{
		CP: cp, Service: "client", InstanceID: "client-1", AppPort: harness.FreePort(t), NoRegister: true,
		Upstreams: []string{"web"},
	})
	agree := func() (bool, string) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		want, err := harness.EtcdInstances(ctx, cli, "web")
		view, verr := cp.Instances("web")
		filler, ferr := cp.Instances("filler")
		var addrs []string
		for _, w := range want {
			addrs = append(addrs, w[strings.Index(w, "@")+1:])
		}
		slices.Sort(addrs)
		routes := client.RoutableEndpoints("web")
		slices.Sort(routes)
		ok := err == nil && verr == nil && ferr == nil && len(want) > 0 &&
			slices.Equal(view, want) && len(filler) == 0 && slices.Equal(routes, addrs)
		return ok, fmt.Sprintf("etcd has %v (err %v); the control plane %v (err %v) and filler %v (err %v); the client routes to %v",
			want, err, view, verr, filler, ferr, routes)
	}
	within(t, harness.DefaultTimeout, "views agree before the pause", agree)

	cp.Pause()
	t.Cleanup(cp.Resume) // before the process's own cleanup kills it
	pausedAt := time.Now()
	churnWhilePaused(ctx, t, cli, web)
	rev, err := harness.CompactEtcd(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	paused := time.Since(pausedAt)
	cp.Resume()
	took := within(t, 5*time.Second, "control plane and client agree with etcd after the compaction", agree)
	final, _ := cp.Instances("web")
	t.Logf("control plane stopped %s while %d revisions were written and etcd compacted at %d; its view and the client's routing equal etcd %s after SIGCONT: %v",
		paused.Round(time.Millisecond), fillerRevisions, rev, took.Round(time.Millisecond), final)
	// The scenario only means something if cp's watch could not resume
	// (kvwatch logs this when etcd answers its watch "compacted").
	if !strings.Contains(cp.Output(), "watch revision compacted") {
		t.Errorf("the control plane's watch never reported a compacted revision: the scenario did not exercise a re-list (raise fillerRevisions)")
	}
}

// churnWhilePaused changes the registry in as many revisions as
// fillerRevisions: web-1..3 deregister, web-7..9 register, web-4 moves to
// a new port, web-ghost registers and deregisters, and filler instances
// come and go.
func churnWhilePaused(ctx context.Context, t *testing.T, cli *clientv3.Client, web func(string, int) clientv3.Op) {
	t.Helper()
	pad := map[string]string{"pad": strings.Repeat("x", fillerBytes)}
	for i := range fillerRevisions - 12 {
		in := registry.Instance{ID: fmt.Sprintf("filler-%d", i), Service: "filler", Address: "127.0.0.1", Port: 1 + i, Metadata: pad}
		if _, err := cli.Do(ctx, harness.PutInstance(t, in)); err != nil {
			t.Fatal(err)
		}
	}
	ops := []clientv3.Op{
		clientv3.OpDelete(registry.ServicePrefix("filler"), clientv3.WithPrefix()),
		web("web-ghost", 20),
		clientv3.OpDelete(registry.InstanceKey("web", "web-ghost")),
		clientv3.OpDelete(registry.InstanceKey("web", "web-1")),
		clientv3.OpDelete(registry.InstanceKey("web", "web-2")),
		clientv3.OpDelete(registry.InstanceKey("web", "web-3")),
		web("web-4", 14),
		web("web-7", 7),
		web("web-8", 8),
		web("web-9", 9),
		web("web-8", 18),
	}
	for _, op := range ops {
		if _, err := cli.Do(ctx, op); err != nil {
			t.Fatal(err)
		}
	}
}
