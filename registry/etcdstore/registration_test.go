package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-mesh/shoal/internal/etcdclient"
	"github.com/shoal-mesh/shoal/internal/etcdlite"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/registry/etcdstore"
)

// registerFunc is Store.Register or registry.Register over an etcdlite client.
type registerFunc func(context.Context, registry.Instance, registry.RegisterOptions) (*registry.Registration, error)

var _ registry.LeaseKV = (*etcdlite.Client)(nil)

// backends are the two clients one Registration runs on: clientv3 (the
// control plane, the CLI) and etcdlite (the sidecar). Every registration
// scenario runs on both.
var backends = []struct {
	name string
	// connect returns a registerFunc over a new client of endpoints,
	// closed at test cleanup.
	connect func(t *testing.T, endpoints ...string) registerFunc
}{
	{"clientv3", func(t *testing.T, endpoints ...string) registerFunc {
		cli, err := etcdclient.New(endpoints)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		return etcdstore.New(cli, nil).Register
	}},
	{"etcdlite", func(t *testing.T, endpoints ...string) registerFunc {
		cli, err := etcdlite.New(etcdlite.Config{Endpoints: endpoints})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		return liteRegister(cli)
	}},
}

func liteRegister(cli *etcdlite.Client) registerFunc {
	return func(ctx context.Context, in registry.Instance, opts registry.RegisterOptions) (*registry.Registration, error) {
		return registry.Register(ctx, cli, in, opts)
	}
}

// connectHelper is connect for the helper process (no testing.T); nil on
// error or an unknown backend.
func connectHelper(backend, endpoint string) registerFunc {
	switch backend {
	case "clientv3":
		if cli, err := etcdclient.New([]string{endpoint}); err == nil {
			return etcdstore.New(cli, nil).Register
		}
	case "etcdlite":
		if cli, err := etcdlite.New(etcdlite.Config{Endpoints: []string{endpoint}}); err == nil {
			return liteRegister(cli)
		}
	}
	return nil
}

func TestRegisterIsVisibleInListAndWatch(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := etcdtest.Start(t)
			st := etcdstore.New(e.Client(t), nil)
			v := startWatchView(t, st)
			r := register(t, b.connect(t, e.Endpoint()), "orders-1", 0)

			if got := instanceIDs(t, st, "orders"); !cmp.Equal(got, []string{"orders-1"}) {
				t.Errorf("List = %v, want [orders-1]", got)
			}
			eventually(t, defaultTestTimeout, "watch sees orders-1", func() bool { return v.snapshot()["orders/orders-1"] != nil })
			got := v.snapshot()["orders/orders-1"]
			want := &registry.Instance{ID: "orders-1", Service: "orders", Address: "127.0.0.1", Port: 3001, Protocol: "http", Zone: "local", Weight: 1}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("watched instance (-want +got):\n%s", diff)
			}
			svcs, err := st.Services(t.Context())
			if err != nil || !cmp.Equal(svcs, []etcdstore.ServiceSummary{{Name: "orders", Instances: 1}}) {
				t.Errorf("Services = %v, %v", svcs, err)
			}

			if err := r.Deregister(t.Context()); err != nil {
				t.Fatalf("Deregister: %v", err)
			}
			if got := instanceIDs(t, st, "orders"); len(got) != 0 {
				t.Errorf("List after Deregister = %v, want none (deregistration is immediate)", got)
			}
			eventually(t, defaultTestTimeout, "watch sees the deregistration", func() bool { return len(v.snapshot()) == 0 })
		})
	}
}

func TestDeregisterRevokesTheLease(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := etcdtest.Start(t)
			cli := e.Client(t)
			r := register(t, b.connect(t, e.Endpoint()), "orders-1", 0)
			lease := clientv3.LeaseID(r.LeaseID())
			if ttl, err := cli.TimeToLive(t.Context(), lease); err != nil || ttl.TTL <= 0 {
				t.Fatalf("lease before Deregister: TTL %v, %v; want alive", ttl, err)
			}
			if err := r.Deregister(t.Context()); err != nil {
				t.Fatalf("Deregister: %v", err)
			}
			if ttl, err := cli.TimeToLive(t.Context(), lease); err != nil || ttl.TTL != -1 {
				t.Errorf("lease after Deregister: TTL %v, %v; want -1 (revoked, not left to lapse)", ttl, err)
			}
			if err := r.Deregister(t.Context()); err != nil {
				t.Errorf("second Deregister = %v, want the first result (nil)", err)
			}
		})
	}
}

func TestRegisterRejectsInvalidInstanceAndWritesNothing(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := etcdtest.Start(t)
			cli := e.Client(t)
			reg := b.connect(t, e.Endpoint())
			before, _ := cli.Get(t.Context(), "x")
			_, err := reg(t.Context(), registry.Instance{ID: "a", Service: "orders", Address: "127.0.0.1", Port: 0}, registry.RegisterOptions{})
			var fe *registry.FieldError
			if !errors.As(err, &fe) || fe.Field != "port" {
				t.Fatalf("Register(port 0) = %v, want a FieldError on port", err)
			}
			after, _ := cli.Get(t.Context(), "x")
			if before.Header.Revision != after.Header.Revision {
				t.Errorf("etcd revision moved from %d to %d: something was written", before.Header.Revision, after.Header.Revision)
			}
		})
	}
}

func TestKilledProcessIsGoneWithinTTL(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := etcdtest.Start(t)
			st := etcdstore.New(e.Client(t), nil)
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "SHOAL_REGISTRY_HELPER_ETCD="+e.Endpoint(), "SHOAL_REGISTRY_HELPER_BACKEND="+b.name)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			buf := make([]byte, 64)
			if n, _ := out.Read(buf); !strings.Contains(string(buf[:n]), "registered") {
				t.Fatalf("helper did not register: %q", buf[:n])
			}
			if got := instanceIDs(t, st, "child"); !cmp.Equal(got, []string{"child-1"}) {
				t.Fatalf("List = %v, want [child-1]", got)
			}
			cmd.Process.Kill() // kill -9: no deregistration
			took := eventually(t, 3*time.Second, "killed instance gone within TTL (2s) + 1s", func() bool {
				return len(instanceIDs(t, st, "child")) == 0
			})
			t.Logf("killed instance gone after %s (TTL 2s)", took.Round(10*time.Millisecond))
		})
	}
}

func TestRegistrationsSurviveEtcdRestart(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := etcdtest.Start(t)
			st := etcdstore.New(e.Client(t), nil)
			reg := b.connect(t, e.Endpoint())
			const ttl = 2 * time.Second
			var regs []*registry.Registration
			old := map[*registry.Registration]int64{}
			for i := range 3 {
				r := register(t, reg, fmt.Sprintf("orders-%d", i), ttl)
				regs, old[r] = append(regs, r), r.LeaseID()
			}
			// Down for longer than the TTL: every client gives its lease up
			// (no renewal within a TTL) and must register again once etcd is
			// back.
			e.Stop()
			time.Sleep(3 * time.Second) // the outage itself, not synchronisation
			e.Restart()
			// etcd restores the old leases with a fresh TTL, so the keys are
			// listed at once; they lapse one TTL later unless the client has
			// registered again by then. How soon it does depends on how fast
			// this machine reconnects (gRPC's reconnect backoff, CPU), so the
			// test waits for the re-registrations themselves (a new lease
			// each) instead of racing the restored leases' expiry: it polled
			// "3 listed" from the restart and failed under CPU load when a
			// restored lease lapsed before its client reconnected.
			took := eventually(t, defaultTestTimeout, "every instance registered again under a new lease", func() bool {
				for _, r := range regs {
					if r.LeaseID() == old[r] {
						return false
					}
				}
				return len(instanceIDs(t, st, "orders")) == 3
			})
			t.Logf("all registered again %s after restart", took)
			// And they stay registered past the restored leases' TTL: the
			// new leases are kept alive.
			stayRegistered(t, st, time.Now().Add(2*ttl), 3)
		})
	}
}

// stayRegistered checks until the deadline (past one TTL) that service
// orders keeps n instances: their leases are kept alive.
func stayRegistered(t *testing.T, st *etcdstore.Store, until time.Time, n int) {
	t.Helper()
	for time.Now().Before(until) {
		if got := instanceIDs(t, st, "orders"); len(got) != n {
			t.Fatalf("instances = %v, want %d to stay registered", got, n)
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
}

func TestLostLeaseIsRegisteredAgain(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := etcdtest.Start(t)
			cli := e.Client(t)
			st := etcdstore.New(cli, nil)
			r := register(t, b.connect(t, e.Endpoint()), "orders-1", 0)
			old := r.LeaseID()
			if _, err := cli.Revoke(t.Context(), clientv3.LeaseID(old)); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "re-registered under a new lease", func() bool {
				return r.LeaseID() != old && cmp.Equal(instanceIDs(t, st, "orders"), []string{"orders-1"})
			})
			// Deleting the key alone (lease alive) also re-registers.
			if _, err := cli.Delete(t.Context(), registry.InstanceKey("orders", "orders-1")); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "re-registered after key deletion", func() bool {
				return cmp.Equal(instanceIDs(t, st, "orders"), []string{"orders-1"})
			})
			// And after a deletion while etcd restarted and compacted its
			// history (the watch resumes either before the deletion or
			// after the compaction, when only a read can tell).
			e.Stop()
			e.Restart()
			if _, err := cli.Delete(t.Context(), registry.InstanceKey("orders", "orders-1")); err != nil {
				t.Fatal(err)
			}
			e.Compact(t, cli)
			eventually(t, 5*time.Second, "re-registered after a deletion in compacted history", func() bool {
				return cmp.Equal(instanceIDs(t, st, "orders"), []string{"orders-1"})
			})
		})
	}
}

// An endpoint that dies (its host gone, connections cut) or was never up
// does not stop registration while another endpoint of the cluster
// answers: the client fails over.
func TestRegistrationFailsOverToAnotherEndpoint(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := etcdtest.Start(t)
			cli := e.Client(t)
			st := etcdstore.New(cli, nil)
			first, second := etcdtest.StartProxy(t, e.Endpoint()), etcdtest.StartProxy(t, e.Endpoint())
			never := "http://" + etcdtest.FreeAddr(t)
			reg := b.connect(t, never, first.Endpoint(), second.Endpoint())
			const ttl = 2 * time.Second
			r := register(t, reg, "orders-1", ttl)
			register(t, reg, "orders-2", ttl)

			first.Close()
			// Kept alive through the second endpoint past the TTL...
			stayRegistered(t, st, time.Now().Add(2*ttl), 2)
			// ...and registered again through it when the lease is lost.
			old := r.LeaseID()
			if _, err := cli.Revoke(t.Context(), clientv3.LeaseID(old)); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "re-registered through the second endpoint", func() bool {
				return r.LeaseID() != old && cmp.Equal(instanceIDs(t, st, "orders"), []string{"orders-1", "orders-2"})
			})
		})
	}
}
