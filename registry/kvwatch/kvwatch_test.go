package kvwatch_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
	"github.com/shoal-mesh/shoal/registry/kvwatch"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, etcdtest.LeakOptions()...) }

const defaultTestTimeout = 20 * time.Second

// view applies batches to a map, as a consumer would, and reports its copy on
// demand through a channel (Handle runs on Run's goroutine).
type view struct {
	batches chan kvwatch.Batch
}

func startWatch(t *testing.T, cli *clientv3.Client, prefix string) *view {
	t.Helper()
	v := &view{batches: make(chan kvwatch.Batch, 1024)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- kvwatch.Run(ctx, kvwatch.Config{Client: cli, Prefix: prefix, Handle: func(b kvwatch.Batch) {
			b.Events = append([]kvwatch.Event(nil), b.Events...)
			v.batches <- b
		}, RetryMin: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return v
}

// waitFor applies batches to state until cond holds or the deadline passes.
func (v *view) waitFor(t *testing.T, state map[string]string, cond func(map[string]string) bool) []kvwatch.Batch {
	t.Helper()
	var got []kvwatch.Batch
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()
	for !cond(state) {
		select {
		case b := <-v.batches:
			got = append(got, b)
			for _, ev := range b.Events {
				if ev.Type == kvwatch.Put {
					state[ev.Key] = string(ev.Value)
				} else {
					delete(state, ev.Key)
				}
			}
		case <-ctx.Done():
			t.Fatalf("timed out; view = %v", state)
		}
	}
	return got
}

func etcdState(t *testing.T, cli *clientv3.Client, prefix string) map[string]string {
	t.Helper()
	resp, err := cli.Get(t.Context(), prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range resp.Kvs {
		m[string(kv.Key)] = string(kv.Value)
	}
	return m
}

func TestRunDeliversInitialListThenChanges(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	ctx := t.Context()
	if _, err := cli.Put(ctx, "/p/a", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/other", "x"); err != nil {
		t.Fatal(err)
	}
	v := startWatch(t, cli, "/p/")
	state := map[string]string{}
	got := v.waitFor(t, state, func(m map[string]string) bool { return m["/p/a"] == "1" })
	if !got[0].Initial {
		t.Errorf("first batch Initial = false, want true")
	}
	cli.Put(ctx, "/p/b", "2")
	cli.Delete(ctx, "/p/a")
	v.waitFor(t, state, func(m map[string]string) bool { _, a := m["/p/a"]; return !a && m["/p/b"] == "2" })
	if diff := cmp.Diff(etcdState(t, cli, "/p/"), state); diff != "" {
		t.Errorf("view differs from etcd (-etcd +view):\n%s", diff)
	}
}

func TestRunResyncsAfterCompactionWhileDisconnected(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	ctx := t.Context()
	for _, k := range []string{"a", "b", "c"} {
		cli.Put(ctx, "/p/"+k, "v1")
	}
	// The watcher uses its own client so that stopping etcd disconnects it.
	wcli := e.Client(t)
	v := startWatch(t, wcli, "/p/")
	state := map[string]string{}
	v.waitFor(t, state, func(m map[string]string) bool { return len(m) == 3 })

	// While the watcher is cut off, change everything and compact history.
	e.Stop()
	e.Restart()
	cli.Delete(ctx, "/p/a")
	cli.Put(ctx, "/p/b", "v2")
	cli.Put(ctx, "/p/d", "v1")
	cli.Delete(ctx, "/p/d")
	cli.Put(ctx, "/p/e", "v1")
	e.Compact(t, cli)

	want := etcdState(t, cli, "/p/")
	v.waitFor(t, state, func(m map[string]string) bool { return maps.Equal(m, want) })
	if diff := cmp.Diff(want, state); diff != "" {
		t.Errorf("view differs from etcd (-etcd +view):\n%s", diff)
	}
}

func TestRunRequiresConfig(t *testing.T) {
	if err := kvwatch.Run(t.Context(), kvwatch.Config{}); err == nil {
		t.Fatal("Run with empty Config succeeded, want error")
	}
}
