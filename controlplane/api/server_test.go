package api_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/controlplane/api"
	"github.com/shoal-mesh/shoal/controlplane/policies"
	"github.com/shoal-mesh/shoal/controlplane/routes"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, etcdtest.LeakOptions()...) }

const (
	defaultTestTimeout      = 20 * time.Second
	defaultTestShortTimeout = 10 * time.Millisecond
)

// testServer is a management API on loopback over a real embedded etcd.
type testServer struct {
	api  *api.Server
	conn *grpc.ClientConn
	etcd *clientv3.Client

	routes   shoalv1.RouteServiceClient
	registry shoalv1.RegistryServiceClient
	mesh     shoalv1.MeshServiceClient
	policies shoalv1.PolicyServiceClient
}

// startServer starts the API with cfg (Routes is filled in) on 127.0.0.1:0.
func startServer(t testing.TB, cfg api.Config) *testServer {
	t.Helper()
	e := etcdtest.Start(t)
	cli := e.Client(t)
	cfg.Routes = routes.NewStore(cli, slog.New(slog.DiscardHandler))
	cfg.Policies = policies.NewStore(cli, slog.New(slog.DiscardHandler))
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv, err := api.New(cfg)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	gs := api.NewGRPCServer(nil)
	srv.Register(gs)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Close()
		gs.Stop()
		if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{
		api: srv, conn: conn, etcd: cli,
		routes:   shoalv1.NewRouteServiceClient(conn),
		registry: shoalv1.NewRegistryServiceClient(conn),
		mesh:     shoalv1.NewMeshServiceClient(conn),
		policies: shoalv1.NewPolicyServiceClient(conn),
	}
}

// revision reads etcd's current revision.
func (ts *testServer) revision(t testing.TB) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	resp, err := ts.etcd.Get(ctx, "revision-probe")
	if err != nil {
		t.Fatalf("etcd get: %v", err)
	}
	return resp.Header.Revision
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// wantCode fails t unless err has code want and its message holds every
// phrase in contains.
func wantCode(t *testing.T, err error, want codes.Code, contains ...string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != want {
		t.Fatalf("code = %v (%v), want %v", st.Code(), err, want)
	}
	for _, c := range contains {
		if !strings.Contains(st.Message(), c) {
			t.Errorf("message %q does not contain %q", st.Message(), c)
		}
	}
}

func TestNewRequiresRoutes(t *testing.T) {
	if _, err := api.New(api.Config{}); err == nil {
		t.Fatal("New without Routes succeeded")
	}
}
