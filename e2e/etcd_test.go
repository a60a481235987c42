package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// etcdTTL is the registration lease TTL of the etcd scenarios, short to
// keep them short.
const etcdTTL = 3 * time.Second

// Issue 6: etcd restarted, and etcd down longer than the registration TTL,
// under steady GET load. Control plane "etcd" is only an etcd (its
// embedded one); control plane cp serves the mesh from it as external etcd
// (--etcd-endpoints), so an etcd fault leaves cp up. web-1..3 register
// through their sidecars, web-4 through the Node.js package, all with a
// 3s lease. While etcd is down web-3's host crashes (kill -9 of its
// sidecar and app). The numbers: 0 lost registrations 5s after etcd is
// back, web-3's key gone within TTL + 5s of it, then cp's view, etcd and
// the client's routing all equal the live set (0 stale); 0 client-visible
// errors; and the client never holds fewer endpoints than there are live
// instances (no empty push while cp cannot read etcd). The outage lasts
// SHOAL_E2E_ETCD_OUTAGE in the "down longer than the TTL" case (default
// 2 × TTL).
func TestEtcdOutage(t *testing.T) {
	t.Parallel()
	long := envDuration(t, "SHOAL_E2E_ETCD_OUTAGE", 2*etcdTTL)
	for _, tc := range []struct {
		name string
		down time.Duration
	}{
		{"etcd restarted", 0},
		{"etcd down longer than the TTL", long},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			etcdOutage(t, tc.down)
		})
	}
}

func etcdOutage(t *testing.T, down time.Duration) {
	etcd := harness.StartControlPlane(t)
	cp := harness.StartControlPlaneOnEtcd(t, etcd)
	ttl := fmt.Sprintf("%ds", int(etcdTTL/time.Second))
	var apps []*harness.NodeApp
	var sidecars []*harness.Sidecar
	for i := range 3 {
		id := fmt.Sprintf("web-%d", i+1)
		app := harness.StartNodeApp(t, harness.NodeAppOptions{Service: "web", ID: id})
		apps = append(apps, app)
		sidecars = append(sidecars, harness.StartSidecar(t, harness.SidecarOptions{
			CP: cp, Service: "web", InstanceID: id, AppPort: app.Port, Extra: []string{"--ttl", ttl},
		}))
	}
	apps = append(apps, harness.StartNodeApp(t, harness.NodeAppOptions{
		Service: "web", ID: "web-4", Etcd: etcd.EtcdURL(), TTL: int(etcdTTL / time.Second),
	}))
	client := harness.StartSidecar(t, harness.SidecarOptions{
		CP: cp, Service: "client", InstanceID: "client-1", AppPort: harness.FreePort(t), NoRegister: true,
		Upstreams: []string{"web"},
	})
	addrs := func(apps ...*harness.NodeApp) []string {
		var out []string
		for _, a := range apps {
			out = append(out, fmt.Sprintf("127.0.0.1:%d", a.Port))
		}
		slices.Sort(out)
		return out
	}
	routes := func(want []string) bool {
		got := client.RoutableEndpoints("web")
		slices.Sort(got)
		return slices.Equal(got, want)
	}
	harness.Eventually(t, harness.DefaultTimeout, "client routes web to all 4 instances", func() bool { return routes(addrs(apps...)) })

	const victim = 2 // web-3
	live := []*harness.NodeApp{apps[0], apps[1], apps[3]}
	liveIDs := []string{"web-1", "web-2", "web-4"}
	load := steadyLoad(t, client.UpstreamURL("web"), false, down)
	waitRequests(t, load, 300)
	sampler := sampleEndpoints(t, client, "web", 50*time.Millisecond)

	etcd.Kill()
	downAt := time.Now()
	sidecars[victim].Kill()
	apps[victim].Kill()
	out := harness.Eventually(t, harness.DefaultTimeout, "client takes web-3 out of rotation while etcd is down", func() bool {
		return routes(addrs(live...))
	})
	<-time.After(down - time.Since(downAt)) // the scenario's outage length
	etcd.Restart()
	etcd.WaitReady(t)
	back := time.Now()
	outage := back.Sub(downAt)

	// 0 lost: every live instance is registered within 5 s.
	registered := within(t, 5*time.Second, "every live instance registered again after etcd returned", func() (bool, string) {
		ins := instances(t, etcd, "web")
		var missing []string
		for _, id := range liveIDs {
			if !hasInstance(ins, id) {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0, fmt.Sprintf("lost registrations: %v", missing)
	})

	// 0 stale: web-3's lease lapses within TTL + 5 s of etcd's return.
	gone := harness.Eventually(t, etcdTTL+5*time.Second, "web-3's key gone within TTL + 5s of etcd's return", func() bool {
		return !hasInstance(instances(t, etcd, "web"), "web-3")
	})
	cli := etcd.EtcdClient(t)
	want := []string{
		fmt.Sprintf("web-1@127.0.0.1:%d", apps[0].Port), fmt.Sprintf("web-2@127.0.0.1:%d", apps[1].Port),
		fmt.Sprintf("web-4@127.0.0.1:%d", apps[3].Port),
	}
	agreed := within(t, 5*time.Second, "etcd, the control plane's view and the client's routing agree on the live set", func() (bool, string) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		inEtcd, err := harness.EtcdInstances(ctx, cli, "web")
		view, verr := cp.Instances("web")
		ok := err == nil && verr == nil && slices.Equal(inEtcd, want) && slices.Equal(view, want) && routes(addrs(live...))
		return ok, fmt.Sprintf("want %v; etcd has %v (err %v), the control plane %v (err %v), the client routes to %v",
			want, inEtcd, err, view, verr, client.RoutableEndpoints("web"))
	})
	waitRequests(t, load, 300)
	res := load.Stop()
	sampler.stop()
	s := sampler

	t.Logf("etcd down %s (restart included): web-3 out of the client's rotation %s after its crash; live instances registered %s after etcd returned; web-3's key gone %s after (TTL %s); views agreed %s later; client held %d-%d endpoints of web (sampled %d times every 50ms, min %d routable); load: %s",
		outage.Round(time.Millisecond), out.Round(time.Millisecond), registered.Round(time.Millisecond),
		gone.Round(time.Millisecond), etcdTTL, agreed.Round(time.Millisecond), s.min, s.max, s.n, s.minRoutable, res)
	if res.Failures() != 0 {
		t.Errorf("client-visible failures = %d, want 0", res.Failures())
	}
	if s.min < len(live) {
		t.Errorf("the client held only %d endpoints of web at some point (%s), want >= %d live ones: an empty or partial push while etcd was down",
			s.min, s.minAt.Sub(downAt).Round(time.Millisecond), len(live))
	}
	if s.absent > 0 {
		t.Errorf("client /clusters failed or lacked web %d times out of %d: %s", s.absent, s.n, s.firstAbsent)
	}
}

// within polls cond every 50ms until it holds, failing the test with
// cond's last reason after timeout. It returns how long it took.
func within(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, why := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s: %s", what, timeout, why)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// endpointSampler reads a sidecar's admin /clusters on a ticker and keeps
// the fewest endpoints one cluster had.
type endpointSampler struct {
	cluster string
	done    chan struct{} // closed by stop: end the sampling
	stopped chan struct{} // closed when the sampling goroutine returned
	once    sync.Once

	// mu guards the results below (written by the sampling goroutine).
	mu          sync.Mutex
	n, absent   int // samples; samples without the cluster
	min, max    int // endpoints in the cluster
	minRoutable int
	minAt       time.Time
	firstAbsent string
}

// sampleEndpoints samples s's cluster every interval until stop (at test
// cleanup at the latest).
func sampleEndpoints(t *testing.T, s *harness.Sidecar, cluster string, interval time.Duration) *endpointSampler {
	es := &endpointSampler{cluster: cluster, min: -1, minRoutable: -1, done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(es.stopped)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			es.sample(s)
			select {
			case <-es.done:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(es.stop)
	return es
}

func (es *endpointSampler) sample(s *harness.Sidecar) {
	cs, err := s.Clusters()
	es.mu.Lock()
	defer es.mu.Unlock()
	es.n++
	i := slices.IndexFunc(cs, func(c harness.ClusterStatus) bool { return c.Name == es.cluster })
	if i < 0 {
		es.absent++
		if es.firstAbsent == "" {
			es.firstAbsent = fmt.Sprintf("at %s: cluster %s absent (admin error: %v)", time.Now().Format(time.StampMilli), es.cluster, err)
		}
		return
	}
	n, routable := len(cs[i].Endpoints), 0
	for _, e := range cs[i].Endpoints {
		if e.Routable() {
			routable++
		}
	}
	if es.min < 0 || n < es.min {
		es.min, es.minAt = n, time.Now()
	}
	es.max = max(es.max, n)
	if es.minRoutable < 0 || routable < es.minRoutable {
		es.minRoutable = routable
	}
}

// stop ends the sampling and waits for it; safe to call more than once.
func (es *endpointSampler) stop() {
	es.once.Do(func() { close(es.done) })
	<-es.stopped
}
