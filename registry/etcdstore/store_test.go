package etcdstore_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/registry/etcdstore"
	"github.com/shoal-mesh/shoal/registry/kvwatch"
)

func TestMain(m *testing.M) {
	if ep := os.Getenv("SHOAL_REGISTRY_HELPER_ETCD"); ep != "" {
		os.Exit(helperProcess(ep))
	}
	goleak.VerifyTestMain(m, etcdtest.LeakOptions()...)
}

// helperProcess registers one instance through the backend named by
// SHOAL_REGISTRY_HELPER_BACKEND and blocks: the tests kill it.
func helperProcess(endpoint string) int {
	reg := connectHelper(os.Getenv("SHOAL_REGISTRY_HELPER_BACKEND"), endpoint)
	if reg == nil {
		return 3
	}
	in := registry.Instance{ID: "child-1", Service: "child", Address: "127.0.0.1", Port: 4000}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := reg(ctx, in, registry.RegisterOptions{TTL: 2 * time.Second}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 4
	}
	fmt.Println("registered")
	select {}
}

const defaultTestTimeout = 20 * time.Second

// eventually polls cond every 20ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond) // poll interval of a loop with a deadline
	}
	return time.Since(start)
}

func instanceIDs(t *testing.T, st *etcdstore.Store, service string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ins, _, err := st.List(ctx, service)
	if err != nil {
		return nil // etcd may be restarting; callers poll
	}
	var ids []string
	for _, in := range ins {
		ids = append(ids, in.ID)
	}
	return ids
}

func register(t *testing.T, reg registerFunc, id string, ttl time.Duration) *registry.Registration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()
	r, err := reg(ctx, registry.Instance{ID: id, Service: "orders", Address: "127.0.0.1", Port: 3001}, registry.RegisterOptions{
		TTL: ttl, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("Register(%s): %v", id, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// watchView runs Store.Watch into a map service/id -> instance, readable
// via snapshot().
type watchView struct {
	req chan chan map[string]*registry.Instance
}

func startWatchView(t *testing.T, st *etcdstore.Store) *watchView {
	t.Helper()
	v := &watchView{req: make(chan chan map[string]*registry.Instance)}
	batches := make(chan etcdstore.Batch, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.Watch(ctx, func(b etcdstore.Batch) { batches <- b })
	}()
	go func() {
		state := map[string]*registry.Instance{}
		for {
			select {
			case b := <-batches:
				for _, ev := range b.Events {
					if ev.Type == kvwatch.Put {
						state[ev.Service+"/"+ev.ID] = ev.Instance
					} else {
						delete(state, ev.Service+"/"+ev.ID)
					}
				}
			case c := <-v.req:
				c <- maps.Clone(state)
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return v
}

func (v *watchView) snapshot() map[string]*registry.Instance {
	c := make(chan map[string]*registry.Instance)
	v.req <- c
	return <-c
}

func TestMalformedValuesAreSkipped(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	st := etcdstore.New(cli, nil)
	v := startWatchView(t, st)
	ctx := t.Context()
	cli.Put(ctx, registry.InstanceKey("orders", "bad-json"), "{not json")
	cli.Put(ctx, registry.InstanceKey("orders", "bad-port"), `{"id":"bad-port","service":"orders","address":"127.0.0.1","port":0}`)
	cli.Put(ctx, registry.InstanceKey("orders", "wrong-key"), `{"id":"other","service":"orders","address":"127.0.0.1","port":1}`)
	cli.Put(ctx, registry.InstancesPrefix+"no-id", `{}`)
	register(t, st.Register, "orders-1", 0)

	if got := instanceIDs(t, st, "orders"); !cmp.Equal(got, []string{"orders-1"}) {
		t.Errorf("List = %v, want only the valid orders-1", got)
	}
	eventually(t, defaultTestTimeout, "watch holds only orders-1", func() bool {
		s := v.snapshot()
		return len(s) == 1 && s["orders/orders-1"] != nil
	})
	// A valid instance that turns malformed leaves the view.
	cli.Put(ctx, registry.InstanceKey("orders", "orders-1"), "garbage")
	eventually(t, defaultTestTimeout, "watch drops the now-malformed instance", func() bool { return len(v.snapshot()) == 0 })
}

func TestWatchAfterCompactionMatchesEtcd(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	st := etcdstore.New(e.Client(t), nil)
	for i := range 3 {
		register(t, st.Register, fmt.Sprintf("orders-%d", i), 0)
	}
	v := startWatchView(t, st)
	eventually(t, defaultTestTimeout, "watch sees 3", func() bool { return len(v.snapshot()) == 3 })

	e.Stop() // the watcher is disconnected
	e.Restart()
	ctx := t.Context()
	cli.Delete(ctx, registry.InstanceKey("orders", "orders-0"))
	cli.Put(ctx, registry.InstanceKey("users", "users-1"), `{"id":"users-1","service":"users","address":"127.0.0.1","port":5000}`)
	e.Compact(t, cli)

	want := func() []string {
		ins, _, _ := st.List(ctx, "")
		var keys []string
		for _, in := range ins {
			keys = append(keys, in.Service+"/"+in.ID)
		}
		return keys
	}
	eventually(t, defaultTestTimeout, "watch view equals etcd's Get", func() bool {
		got := v.snapshot()
		w := want()
		if len(got) != len(w) {
			return false
		}
		for _, k := range w {
			if got[k] == nil {
				return false
			}
		}
		return true
	})
}
