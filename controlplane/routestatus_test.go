package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-mesh/shoal/controlplane/routes"
	"github.com/shoal-mesh/shoal/controlplane/routes/routestest"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

const defaultTestTimeout = 20 * time.Second

// startServer runs a control plane without gossip against a test etcd, on
// free loopback ports, until cleanup.
func startServer(t *testing.T) (*Server, *etcdtest.Etcd) {
	t.Helper()
	e := etcdtest.Start(t)
	s, err := New(Config{
		EtcdEndpoints: []string{e.Endpoint()},
		DataDir:       t.TempDir(), // the dev CA
		XDSListen:     "127.0.0.1:0", APIListen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	})
	return s, e
}

// eventually polls cond every few milliseconds until it holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func routeStatus(sts []*shoalv1.RouteStatus, name string) *shoalv1.RouteStatus {
	for _, st := range sts {
		if st.GetName() == name {
			return st
		}
	}
	return nil
}

// TestInvalidRouteInEtcdKeepsLastGoodVersion is issue 6: a route written
// straight into etcd that fails validation is not pushed; the last good
// version stays in the xDS input, MeshService.Status reports the refusal
// with the etcd revision and the field path, and a valid write clears it.
func TestInvalidRouteInEtcdKeepsLastGoodVersion(t *testing.T) {
	s, e := startServer(t)
	ctx := t.Context()
	cli := e.Client(t)
	conn, err := grpc.NewClient(s.Addrs().API, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mesh := shoalv1.NewMeshServiceClient(conn)
	status := func() []*shoalv1.RouteStatus {
		resp, err := mesh.Status(ctx, &shoalv1.StatusRequest{})
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		return resp.GetRoutes()
	}

	good, err := routes.NewStore(cli, nil).Create(ctx, routestest.Valid("web"))
	if err != nil {
		t.Fatal(err)
	}
	served := func(version string) func() bool {
		return func() bool {
			st := routeStatus(s.xds.RouteStatuses(), "web")
			return st.GetAccepted() && st.GetVersion() == version
		}
	}
	eventually(t, "the good version served", served(good.GetVersion()))

	bad := proto.CloneOf(good)
	bad.Version = ""
	bad.Rules[0].Destinations[0].Weight = -5
	val, err := protojson.Marshal(bad)
	if err != nil {
		t.Fatal(err)
	}
	put, err := cli.Put(ctx, routes.Key("web"), string(val))
	if err != nil {
		t.Fatal(err)
	}
	badVersion := fmt.Sprint(put.Header.Revision)
	eventually(t, "the refusal in Status", func() bool {
		return routeStatus(status(), "web").GetVersion() == badVersion
	})
	st := routeStatus(status(), "web")
	wantPrefix := "rejected version " + badVersion + ": rules[0].destinations[0].weight: "
	wantSuffix := "; serving version " + good.GetVersion()
	if st.GetAccepted() || !strings.HasPrefix(st.GetError(), wantPrefix) || !strings.HasSuffix(st.GetError(), wantSuffix) {
		t.Errorf("status = %v, want not accepted with %q...%q", st, wantPrefix, wantSuffix)
	}
	if !served(good.GetVersion())() {
		t.Errorf("xDS route statuses = %v, want web at %s still served", s.xds.RouteStatuses(), good.GetVersion())
	}
	s.state.mu.Lock()
	kept := s.state.rts["web"].GetVersion()
	s.state.mu.Unlock()
	if kept != good.GetVersion() {
		t.Errorf("xDS input holds web version %q, want the last good %q", kept, good.GetVersion())
	}

	// A malformed value for a route never valid: reported, nothing served.
	if _, err := cli.Put(ctx, routes.Key("junk"), "{not json"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "junk in Status", func() bool { return routeStatus(status(), "junk") != nil })
	if st := routeStatus(status(), "junk"); st.GetAccepted() || !strings.Contains(st.GetError(), "not route JSON") {
		t.Errorf("junk status = %v, want not accepted, not route JSON", st)
	}

	// A valid write clears the error and is served.
	fixed := proto.CloneOf(good)
	fixed.Version = ""
	fixed.Rules[0].Strategy = shoalv1.Strategy_STRATEGY_RANDOM
	next, err := routes.NewStore(cli, nil).Update(ctx, fixed)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the fixed version served", served(next.GetVersion()))
	eventually(t, "the error cleared in Status", func() bool {
		st := routeStatus(status(), "web")
		return st.GetAccepted() && st.GetVersion() == next.GetVersion() && st.GetError() == ""
	})
}
