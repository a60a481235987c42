package controlplane_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-mesh/shoal/controlplane"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/registry/etcdstore"
)

// start runs a control plane with embedded etcd on free ports.
func start(t *testing.T, opts ...func(*controlplane.Config)) (*controlplane.Server, func() error) {
	t.Helper()
	cfg := controlplane.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.EtcdListen, cfg.EtcdPeerListen = etcdtest.FreeAddr(t), etcdtest.FreeAddr(t)
	cfg.XDSListen, cfg.APIListen, cfg.AdminListen, cfg.GossipListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := controlplane.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error { once.Do(func() { cancel(); runErr = <-done }); return runErr }
	t.Cleanup(func() { stop() })
	return srv, stop
}

func waitReady(t *testing.T, admin string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + admin + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // poll interval of a loop with a deadline
	}
	t.Fatal("control plane not ready within 20s")
}

func TestServerServesEtcdAPIAndStatus(t *testing.T) {
	srv, stop := start(t)
	a := srv.Addrs()
	waitReady(t, a.Admin)

	// An instance written by any etcd client shows up in the API.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	reg, err := etcdstore.New(srv.Client(), nil).Register(ctx,
		registry.Instance{ID: "web-1", Service: "web", Address: "127.0.0.1", Port: 3001}, registry.RegisterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()

	conn, err := grpc.NewClient(a.API, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v; want SERVING", hc, err)
	}
	rc := shoalv1.NewRegistryServiceClient(conn)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := rc.ListInstances(ctx, &shoalv1.ListInstancesRequest{Service: "web"})
		if err == nil && len(resp.GetInstances()) == 1 && resp.GetInstances()[0].GetId() == "web-1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ListInstances = %v, %v; want web-1", resp, err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval of a loop with a deadline
	}
	st, err := shoalv1.NewMeshServiceClient(conn).Status(ctx, &shoalv1.StatusRequest{})
	if err != nil || !st.GetReady() || st.GetControlPlaneId() == "" {
		t.Fatalf("Status = %v, %v; want ready with an id", st, err)
	}
	if len(st.GetMembers()) != 1 || st.GetMembers()[0].GetRole() != "controlplane" {
		t.Errorf("members = %v, want the control plane itself", st.GetMembers())
	}
	reg.Close()
	if err := stop(); err != nil {
		t.Errorf("Run returned %v after a clean shutdown, want nil", err)
	}
}

// Profiles are served on the admin listener only when asked for.
func TestPprofOnlyWhenEnabled(t *testing.T) {
	for _, on := range []bool{false, true} {
		srv, _ := start(t, func(c *controlplane.Config) { c.Pprof = on })
		admin := srv.Addrs().Admin
		waitReady(t, admin)
		resp, err := http.Get("http://" + admin + "/debug/pprof/heap?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[on]; resp.StatusCode != want {
			t.Errorf("pprof %v: GET /debug/pprof/heap = %d, want %d", on, resp.StatusCode, want)
		}
	}
}

func TestNewFailsOnABusyPortAndReleasesEverything(t *testing.T) {
	srv, _ := start(t)
	cfg := controlplane.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.EtcdListen, cfg.EtcdPeerListen = etcdtest.FreeAddr(t), etcdtest.FreeAddr(t)
	cfg.XDSListen, cfg.APIListen, cfg.AdminListen, cfg.GossipListen = "127.0.0.1:0", srv.Addrs().API, "127.0.0.1:0", ""
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := controlplane.New(cfg); err == nil {
		t.Fatal("New with a busy --api-listen succeeded")
	}
	// goleak (TestMain) checks that the embedded etcd it started is gone.
}

// TestDuplicateRegistrationsAreReported: the app's npm package and its
// sidecar both registered one address; Status names both and the one
// served, and a metric counts the address.
func TestDuplicateRegistrationsAreReported(t *testing.T) {
	srv, _ := start(t)
	a := srv.Addrs()
	waitReady(t, a.Admin)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	store := etcdstore.New(srv.Client(), nil)
	for _, in := range []registry.Instance{
		{ID: "web-sidecar", Service: "web", Address: "127.0.0.1", Port: 3001},
		{ID: "web-1", Service: "web", Address: "127.0.0.1", Port: 3001, Metadata: map[string]string{"version": "v2"}},
	} {
		reg, err := store.Register(ctx, in, registry.RegisterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer reg.Close()
	}
	conn, err := grpc.NewClient(a.API, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	want := &shoalv1.DuplicateRegistration{Service: "web", Address: "127.0.0.1:3001", InstanceIds: []string{"web-1", "web-sidecar"}, KeptInstanceId: "web-1"}
	var got []*shoalv1.DuplicateRegistration
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := shoalv1.NewMeshServiceClient(conn).Status(ctx, &shoalv1.StatusRequest{})
		if got = st.GetDuplicates(); err == nil && len(got) == 1 && proto.Equal(got[0], want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Status().Duplicates = %v, %v; want %v", got, err, want)
		}
	}
	resp, err := http.Get("http://" + a.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "\nshoal_controlplane_duplicate_registrations 1\n") {
		t.Errorf("/metrics lacks shoal_controlplane_duplicate_registrations 1")
	}
}
