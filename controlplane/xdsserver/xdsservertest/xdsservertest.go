// Package xdsservertest starts shoal's xDS server and gRPC echo backends on
// loopback for tests that drive real xDS clients (grpc-go, grpc-js-xds).
package xdsservertest

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/shoal-mesh/shoal/controlplane/xdsserver"
	"github.com/shoal-mesh/shoal/registry"
)

// backend answers UnaryCall with its id (as SimpleResponse.Hostname).
type backend struct {
	testgrpc.UnimplementedTestServiceServer
	id string
}

func (b *backend) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Hostname: b.id}, nil
}

// StartBackends serves n gRPC backends of service svc (ids svc-1..svc-n)
// on loopback until test cleanup and returns them as healthy endpoints.
func StartBackends(t testing.TB, svc string, n int) []registry.Endpoint {
	t.Helper()
	var eps []registry.Endpoint
	for i := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("%s-%d", svc, i+1)
		g := grpc.NewServer()
		testgrpc.RegisterTestServiceServer(g, &backend{id: id})
		done := make(chan struct{})
		go func() { defer close(done); g.Serve(lis) }()
		t.Cleanup(func() { g.Stop(); <-done })
		eps = append(eps, registry.Endpoint{Instance: &registry.Instance{
			ID: id, Service: svc, Address: "127.0.0.1", Port: lis.Addr().(*net.TCPAddr).Port,
			Protocol: registry.ProtocolGRPC, Zone: "local", Weight: 1,
		}, Health: registry.HealthHealthy})
	}
	return eps
}

// StartServer runs an xdsserver.Server (5 ms debounce) on a loopback gRPC server
// with xdsserver.ServerOptions until test cleanup and returns it with its address.
func StartServer(t testing.TB) (*xdsserver.Server, string) {
	t.Helper()
	srv, err := xdsserver.New(xdsserver.Config{Debounce: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(xdsserver.ServerOptions()...)
	srv.Register(g)
	serveDone := make(chan struct{})
	go func() { defer close(serveDone); g.Serve(lis) }()
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { defer close(runDone); srv.Run(ctx) }()
	t.Cleanup(func() {
		g.Stop()
		<-serveDone
		cancel()
		<-runDone
		srv.Close()
	})
	return srv, lis.Addr().String()
}
