package xdsclient

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/shoal-mesh/shoal/controlplane/xds"
)

var modes = []Mode{ModeDelta, ModeSotW}

func has(s *Snapshot, typeURL, name string) bool { return s.Has(typeURL, name) }

func TestSnapshotsFollowTheServer(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			srv := startServer(t, mesh{version: "v1", services: map[string][]uint32{"orders": {3001}}}, false)
			c, rec, _ := startClient(t, testConfig(srv.addr, mode))

			s := rec.waitFor(t, "initial snapshot", func(s *Snapshot) bool { return ports(s, "orders") == "3001," })
			if !s.Complete() || !has(s, ListenerType, "outbound") || !has(s, RouteType, "outbound") || !has(s, ClusterType, "orders") {
				t.Fatalf("initial snapshot incomplete: %+v", s)
			}
			if got := s.Versions[ListenerType]; got != "v1" {
				t.Errorf("listener version = %q, want v1", got)
			}
			if st := c.Status(); !st.Connected || st.Mode != mode.String() || st.Types[ClusterType].Version != "v1" {
				t.Errorf("Status() = %+v", st)
			}

			srv.set(t, mesh{version: "v2", services: map[string][]uint32{"orders": {3001, 3002}}})
			rec.waitFor(t, "endpoint change", func(s *Snapshot) bool { return ports(s, "orders") == "3001,3002," })

			srv.set(t, mesh{version: "v3", services: map[string][]uint32{"orders": {3001, 3002}, "payments": {4001}}})
			s = rec.waitFor(t, "new service", func(s *Snapshot) bool { return ports(s, "payments") == "4001," })
			if !s.Complete() || !has(s, ClusterType, "payments") {
				t.Errorf("snapshot with payments incomplete: %+v", s)
			}

			srv.set(t, mesh{version: "v4", services: map[string][]uint32{"orders": {3001, 3002}}})
			rec.waitFor(t, "service removed", func(s *Snapshot) bool {
				return !has(s, ClusterType, "payments") && !has(s, EndpointType, "payments")
			})
			if mode == ModeDelta {
				pollUntil(t, "EDS unsubscribe of payments", func() bool {
					_, unsub, _ := srv.seen()
					return slices.Contains(unsub, "payments")
				})
			}
		})
	}
}

// TestNodeIdentity checks the node the control plane receives, decoded
// with go-control-plane's types: its capability profile depends on
// user_agent_name, and operators see the metadata and locality.
func TestNodeIdentity(t *testing.T) {
	md, err := structpb.NewStruct(map[string]any{"service": "orders", "instance_id": "orders-1"})
	if err != nil {
		t.Fatal(err)
	}
	want := &corev3.Node{
		Id: testNodeID, Cluster: "orders", Metadata: md,
		Locality:             &corev3.Locality{Zone: "local"},
		UserAgentName:        UserAgentName,
		UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: "test"},
	}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			srv := startServer(t, mesh{version: "v1", services: map[string][]uint32{"orders": {3001}}}, false)
			_, rec, _ := startClient(t, testConfig(srv.addr, mode))
			rec.waitFor(t, "initial snapshot", func(s *Snapshot) bool { return ports(s, "orders") == "3001," })
			// go-control-plane's SotW server copies the first request's
			// node into the later ones, so only the first is checked.
			nodes := srv.sentNodes()
			if len(nodes) == 0 {
				t.Fatal("server saw no node")
			}
			if diff := cmp.Diff(want, nodes[0], protocmp.Transform()); diff != "" {
				t.Errorf("node (-want +got):\n%s", diff)
			}
			if caps := xds.CapabilitiesFor(nodes[0]); caps.Profile != xds.CapabilitiesEnvoy.Profile {
				t.Errorf("control plane profile %q, want %q", caps.Profile, xds.CapabilitiesEnvoy.Profile)
			}
		})
	}
}

func TestInvalidResourceIsNACKedAndLastGoodKept(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			good := map[string][]uint32{"orders": {3001}}
			srv := startServer(t, mesh{version: "v1", services: good}, false)
			c, rec, _ := startClient(t, testConfig(srv.addr, mode))
			want := rec.waitFor(t, "initial snapshot", func(s *Snapshot) bool { return ports(s, "orders") == "3001," })
			_, n := rec.last()

			srv.set(t, mesh{version: "v2", services: good, badCluster: "broken"})
			pollUntil(t, "NACK seen by the server", func() bool {
				details, _, _ := srv.seen()
				return slices.ContainsFunc(details, func(d string) bool {
					return strings.Contains(d, `"broken"`) && strings.Contains(d, "ConnectTimeout")
				})
			})
			ts := c.Status().Types[ClusterType]
			if !strings.Contains(ts.LastNACK, "broken") || ts.Version != "v1" {
				t.Errorf("cluster status = %+v, want NACK of broken with version v1 kept", ts)
			}
			if got, m := rec.last(); got != want || m != n {
				t.Errorf("snapshot changed after a NACK: %d deliveries, want %d", m, n)
			}

			srv.set(t, mesh{version: "v3", services: map[string][]uint32{"orders": {3005}}})
			s := rec.waitFor(t, "recovery", func(s *Snapshot) bool { return ports(s, "orders") == "3005," })
			if has(s, ClusterType, "broken") {
				t.Error("rejected cluster delivered")
			}
		})
	}
}

func TestValidateHookRejects(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			srv := startServer(t, mesh{version: "v1", services: map[string][]uint32{"orders": {3001}}}, false)
			cfg := testConfig(srv.addr, mode)
			cfg.Validate = func(typeURL string, rs map[string]Resource) error {
				if _, ok := rs["forbidden"]; typeURL == ClusterType && ok {
					return errString("cluster forbidden: unsupported")
				}
				return nil
			}
			_, rec, _ := startClient(t, cfg)
			rec.waitFor(t, "initial snapshot", func(s *Snapshot) bool { return ports(s, "orders") == "3001," })

			srv.set(t, mesh{version: "v2", services: map[string][]uint32{"orders": {3001}, "forbidden": {1}}})
			pollUntil(t, "hook NACK seen by the server", func() bool {
				details, _, _ := srv.seen()
				return slices.ContainsFunc(details, func(d string) bool {
					return strings.Contains(d, "rejected by sidecar: cluster forbidden: unsupported")
				})
			})
			if s, _ := rec.last(); has(s, ClusterType, "forbidden") {
				t.Error("rejected cluster delivered")
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestDeltaFallsBackToSotW(t *testing.T) {
	srv := startServer(t, mesh{version: "v1", services: map[string][]uint32{"orders": {3001}}}, true)
	c, rec, _ := startClient(t, testConfig(srv.addr, ModeDelta))
	rec.waitFor(t, "snapshot over SotW", func(s *Snapshot) bool { return ports(s, "orders") == "3001," })
	if st := c.Status(); st.Mode != "sotw" {
		t.Errorf("Status().Mode = %q, want sotw", st.Mode)
	}
}

func TestSettleTimeoutDeliversIncompleteSnapshot(t *testing.T) {
	srv := startServer(t, mesh{version: "v1", services: map[string][]uint32{"orders": {3001}}, ghostEDS: "ghost"}, false)
	_, rec, _ := startClient(t, testConfig(srv.addr, ModeDelta))
	s := rec.waitFor(t, "snapshot after settle", func(s *Snapshot) bool { return has(s, ClusterType, "ghost") })
	if diff := cmp.Diff([]string{"ghost"}, s.MissingEndpoints); diff != "" || s.Complete() {
		t.Errorf("MissingEndpoints (-want +got):\n%s", diff)
	}
	if ports(s, "orders") != "3001," {
		t.Errorf("orders endpoints = %s", ports(s, "orders"))
	}
}

func TestReconnectKeepsLastSnapshot(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			srv := startServer(t, mesh{version: "v1", services: map[string][]uint32{"orders": {3001}}}, false)
			c, rec, _ := startClient(t, testConfig(srv.addr, mode))
			want := rec.waitFor(t, "initial snapshot", func(s *Snapshot) bool { return ports(s, "orders") == "3001," })
			_, n := rec.last()

			srv.stop()
			pollUntil(t, "disconnect with an error", func() bool {
				st := c.Status()
				return !st.Connected && st.LastError != ""
			})
			if got, m := rec.last(); got != want || m != n {
				t.Errorf("snapshot changed while disconnected: %d deliveries, want %d", m, n)
			}

			srv.set(t, mesh{version: "v2", services: map[string][]uint32{"orders": {3002}}})
			srv.restart(t)
			rec.waitFor(t, "resync after reconnect", func(s *Snapshot) bool { return ports(s, "orders") == "3002," })
			if _, _, streams := srv.seen(); streams < 2 {
				t.Errorf("server saw %d streams, want a reconnect", streams)
			}
			pollUntil(t, "connected", func() bool { return c.Status().Connected })
		})
	}
}

func TestStateDirRoundTrip(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			srv := startServer(t, mesh{version: "v1", services: map[string][]uint32{"orders": {3001}}}, false)
			cfg := testConfig(srv.addr, mode)
			cfg.StateDir = dir
			_, rec, stop := startClient(t, cfg)
			live := rec.waitFor(t, "live snapshot", func(s *Snapshot) bool { return ports(s, "orders") == "3001," })
			stop() // waits for OnUpdate and the state write
			loaded, err := LoadState(dir)
			if err != nil {
				t.Fatalf("LoadState: %v", err)
			}
			assertSameResources(t, live, loaded)

			srv.stop()
			_, rec2, _ := startClient(t, cfg)
			saved := rec2.waitFor(t, "saved snapshot", func(s *Snapshot) bool { return s.FromState })
			assertSameResources(t, live, saved)

			srv.set(t, mesh{version: "v2", services: map[string][]uint32{"orders": {3002}}})
			srv.restart(t)
			rec2.waitFor(t, "live snapshot after restart", func(s *Snapshot) bool {
				return !s.FromState && ports(s, "orders") == "3002,"
			})
		})
	}
}

func assertSameResources(t *testing.T, want, got *Snapshot) {
	t.Helper()
	opts := []cmp.Option{cmp.AllowUnexported(Snapshot{}), protocmp.Transform(),
		cmp.FilterPath(func(p cmp.Path) bool {
			f := p.Last().String()
			return f == ".FromState" || f == ".MissingRoutes" || f == ".MissingEndpoints"
		}, cmp.Ignore())}
	if diff := cmp.Diff(want, got, opts...); diff != "" {
		t.Errorf("snapshot mismatch (-want +got):\n%s", diff)
	}
}

func TestCorruptStateIsIgnored(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "{not json")
	if _, err := LoadState(dir); err == nil {
		t.Fatal("LoadState of a corrupt file: nil error")
	}
	cfg := testConfig(deadAddr(t), ModeDelta)
	cfg.StateDir = dir
	cfg.InitialFetchTimeout = time.Millisecond
	c, rec, _ := startClient(t, cfg)
	pollUntil(t, "a failed stream", func() bool { return c.Status().LastError != "" })
	ctx, cancel := contextWithTimeout(t, defaultTestShortTimeout)
	defer cancel()
	select {
	case <-rec.changed:
		s, _ := rec.last()
		t.Errorf("delivered a snapshot from a corrupt state file: %+v", s)
	case <-ctx.Done():
	}
}

// TestFailsOverToTheNextServer: a sidecar following two control planes
// keeps receiving updates from the second when the first dies, without
// losing its last good snapshot in between.
func TestFailsOverToTheNextServer(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			m1 := mesh{version: "v1", services: map[string][]uint32{"orders": {3001}}}
			first, second := startServer(t, m1, false), startServer(t, m1, false)
			cfg := testConfig(first.addr, mode)
			cfg.FallbackServers = []string{second.addr}
			c, rec, _ := startClient(t, cfg)
			want := rec.waitFor(t, "initial snapshot", func(s *Snapshot) bool { return ports(s, "orders") == "3001," })
			if _, _, streams := second.seen(); streams != 0 {
				t.Errorf("second server saw %d streams while the first was up, want 0", streams)
			}
			if st := c.Status(); st.Server != first.addr {
				t.Errorf("Status().Server = %q, want the first server %q", st.Server, first.addr)
			}

			first.stop()
			second.set(t, mesh{version: "v2", services: map[string][]uint32{"orders": {3001, 3002}}})
			got := rec.waitFor(t, "update from the second server", func(s *Snapshot) bool { return ports(s, "orders") == "3001,3002," })
			pollUntil(t, "connected to the second server", func() bool {
				st := c.Status()
				return st.Connected && st.Server == second.addr
			})
			if got == want {
				t.Errorf("no new snapshot after failover")
			}
			second.set(t, mesh{version: "v3", services: map[string][]uint32{"orders": {3003}}})
			rec.waitFor(t, "a later update from the second server", func(s *Snapshot) bool { return ports(s, "orders") == "3003," })
		})
	}
}

// TestAllServersDownKeepsLastSnapshot: with every server gone the client
// keeps its last good snapshot and comes back to whichever returns.
func TestAllServersDownKeepsLastSnapshot(t *testing.T) {
	m1 := mesh{version: "v1", services: map[string][]uint32{"orders": {3001}}}
	first, second := startServer(t, m1, false), startServer(t, m1, false)
	cfg := testConfig(first.addr, ModeDelta)
	cfg.FallbackServers = []string{second.addr}
	c, rec, _ := startClient(t, cfg)
	rec.waitFor(t, "initial snapshot", func(s *Snapshot) bool { return ports(s, "orders") == "3001," })
	first.stop()
	pollUntil(t, "failed over to the second server", func() bool {
		st := c.Status()
		return st.Connected && st.Server == second.addr
	})
	want, n := rec.last()
	second.stop()
	pollUntil(t, "disconnected from both", func() bool {
		st := c.Status()
		return !st.Connected && st.LastError != ""
	})
	if got, m := rec.last(); got != want || m != n {
		t.Errorf("snapshot changed while every server was down: %d deliveries, want %d", m, n)
	}
	first.set(t, mesh{version: "v2", services: map[string][]uint32{"orders": {3002}}})
	first.restart(t)
	rec.waitFor(t, "resync with the first server back", func(s *Snapshot) bool { return ports(s, "orders") == "3002," })
}
