package api_test

import (
	"sort"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/shoal-mesh/shoal/controlplane/api"
	"github.com/shoal-mesh/shoal/controlplane/routes/routestest"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// recvAll receives n messages from a stream on the test goroutine.
func recvAll[T any](t *testing.T, stream grpc.ServerStreamingClient[T], n int) []*T {
	t.Helper()
	var out []*T
	for range n {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		out = append(out, m)
	}
	return out
}

func TestWatchRoutes(t *testing.T) {
	ts := startServer(t, api.Config{})
	ctx := testContext(t)
	web, err := ts.routes.CreateRoute(ctx, &shoalv1.CreateRouteRequest{Route: routestest.Valid("web")})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := ts.routes.WatchRoutes(ctx, &shoalv1.WatchRoutesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	initial := recvAll(t, stream, 1)[0]
	want := &shoalv1.WatchRoutesResponse{Initial: true, Events: []*shoalv1.RouteEvent{{Type: shoalv1.RouteEvent_TYPE_PUT, Route: web.GetRoute()}}}
	if diff := cmp.Diff(want, initial, protocmp.Transform()); diff != "" {
		t.Errorf("initial (-want +got):\n%s", diff)
	}

	apiRoute, err := ts.routes.CreateRoute(ctx, &shoalv1.CreateRouteRequest{Route: routestest.Valid("api")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.routes.DeleteRoute(ctx, &shoalv1.DeleteRouteRequest{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	var events []*shoalv1.RouteEvent
	for len(events) < 2 {
		events = append(events, recvAll(t, stream, 1)[0].GetEvents()...)
	}
	wantEvents := []*shoalv1.RouteEvent{
		{Type: shoalv1.RouteEvent_TYPE_PUT, Route: apiRoute.GetRoute()},
		{Type: shoalv1.RouteEvent_TYPE_DELETE, Route: &shoalv1.Route{Name: "web"}},
	}
	if diff := cmp.Diff(wantEvents, events, protocmp.Transform()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	// Close ends open watches so that GracefulStop can finish.
	ts.api.Close()
	_, err = stream.Recv()
	wantCode(t, err, codes.Unavailable)
}

func TestReflectionAndHealth(t *testing.T) {
	ts := startServer(t, api.Config{})
	ctx := testContext(t)
	stream, err := reflectionpb.NewServerReflectionClient(ts.conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	stream.CloseSend()
	var got []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		got = append(got, s.GetName())
	}
	sort.Strings(got)
	want := []string{
		"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
		"shoal.v1.MeshService", "shoal.v1.PolicyService", "shoal.v1.RegistryService", "shoal.v1.RouteService",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reflection services (-want +got):\n%s", diff)
	}
	hc, err := healthpb.NewHealthClient(ts.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health = %v, %v; want SERVING", hc, err)
	}
}

func TestNilSourcesGiveEmptyAnswers(t *testing.T) {
	ts := startServer(t, api.Config{})
	ctx := testContext(t)
	svcs, err := ts.registry.ListServices(ctx, &shoalv1.ListServicesRequest{})
	if err != nil || len(svcs.GetServices()) != 0 {
		t.Errorf("ListServices = %v, %v; want empty", svcs, err)
	}
	ins, err := ts.registry.ListInstances(ctx, &shoalv1.ListInstancesRequest{})
	if err != nil || len(ins.GetInstances()) != 0 {
		t.Errorf("ListInstances = %v, %v; want empty", ins, err)
	}
	st, err := ts.mesh.Status(ctx, &shoalv1.StatusRequest{})
	if diff := cmp.Diff(&shoalv1.StatusResponse{}, st, protocmp.Transform()); err != nil || diff != "" {
		t.Errorf("Status = %v (-want +got):\n%s", err, diff)
	}
	_, err = ts.registry.ListInstances(ctx, &shoalv1.ListInstancesRequest{Service: "Bad Name"})
	wantCode(t, err, codes.InvalidArgument, "service: ")
}

// fakeInstances is a hand-written InstanceSource.
type fakeInstances struct {
	mu      sync.Mutex
	eps     []registry.Endpoint
	notify  map[int]func()
	nextSub int
}

func (f *fakeInstances) Endpoints() []registry.Endpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.eps
}

func (f *fakeInstances) Subscribe(notify func()) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.notify == nil {
		f.notify = map[int]func(){}
	}
	id := f.nextSub
	f.nextSub++
	f.notify[id] = notify
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.notify, id)
	}
}

func (f *fakeInstances) set(eps ...registry.Endpoint) {
	f.mu.Lock()
	f.eps = eps
	subs := make([]func(), 0, len(f.notify))
	for _, n := range f.notify {
		subs = append(subs, n)
	}
	f.mu.Unlock()
	for _, n := range subs {
		n()
	}
}

type fakeStatus struct{ resp *shoalv1.StatusResponse }

func (f fakeStatus) Status() *shoalv1.StatusResponse { return f.resp }

func endpoint(service, id string, h registry.Health) registry.Endpoint {
	return registry.Endpoint{Instance: &registry.Instance{
		ID: id, Service: service, Address: "127.0.0.1", Port: 3000, Protocol: registry.ProtocolHTTP,
		Zone: "local", Weight: 1, Metadata: map[string]string{"version": "v1"},
	}, Health: h}
}

func TestRegistryAndMeshServices(t *testing.T) {
	src := &fakeInstances{}
	src.set(endpoint("orders", "orders-1", registry.HealthHealthy), endpoint("orders", "orders-2", registry.HealthSuspect),
		endpoint("web", "web-1", registry.HealthUnknown))
	status := &shoalv1.StatusResponse{ControlPlaneVersion: "test", Ready: true, Clients: []*shoalv1.XdsClient{{NodeId: "sidecar-1"}}}
	ts := startServer(t, api.Config{Instances: src, Status: fakeStatus{status}})
	ctx := testContext(t)

	svcs, err := ts.registry.ListServices(ctx, &shoalv1.ListServicesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	wantSvcs := &shoalv1.ListServicesResponse{Services: []*shoalv1.Service{
		{Name: "orders", Instances: 2, HealthyInstances: 1}, {Name: "web", Instances: 1, HealthyInstances: 1},
	}}
	if diff := cmp.Diff(wantSvcs, svcs, protocmp.Transform()); diff != "" {
		t.Errorf("ListServices (-want +got):\n%s", diff)
	}
	ins, err := ts.registry.ListInstances(ctx, &shoalv1.ListInstancesRequest{Service: "web"})
	if err != nil {
		t.Fatal(err)
	}
	web1 := &shoalv1.Instance{Id: "web-1", Service: "web", Address: "127.0.0.1", Port: 3000, Protocol: "http", Zone: "local", Weight: 1, Metadata: map[string]string{"version": "v1"}}
	if diff := cmp.Diff(&shoalv1.ListInstancesResponse{Instances: []*shoalv1.Instance{web1}}, ins, protocmp.Transform()); diff != "" {
		t.Errorf("ListInstances (-want +got):\n%s", diff)
	}

	stream, err := ts.registry.WatchInstances(ctx, &shoalv1.WatchInstancesRequest{Service: "web"})
	if err != nil {
		t.Fatal(err)
	}
	first := recvAll(t, stream, 1)[0]
	want := &shoalv1.WatchInstancesResponse{Initial: true, Events: []*shoalv1.InstanceEvent{{Type: shoalv1.InstanceEvent_TYPE_PUT, Instance: web1}}}
	if diff := cmp.Diff(want, first, protocmp.Transform()); diff != "" {
		t.Errorf("initial (-want +got):\n%s", diff)
	}
	src.set(endpoint("orders", "orders-1", registry.HealthHealthy), endpoint("web", "web-2", registry.HealthDraining))
	var events []*shoalv1.InstanceEvent
	for len(events) < 2 {
		events = append(events, recvAll(t, stream, 1)[0].GetEvents()...)
	}
	web2 := &shoalv1.Instance{Id: "web-2", Service: "web", Address: "127.0.0.1", Port: 3000, Protocol: "http", Zone: "local", Weight: 1,
		Metadata: map[string]string{"version": "v1"}, Health: shoalv1.HealthStatus_HEALTH_STATUS_DRAINING}
	wantEvents := []*shoalv1.InstanceEvent{
		{Type: shoalv1.InstanceEvent_TYPE_PUT, Instance: web2},
		{Type: shoalv1.InstanceEvent_TYPE_DELETE, Instance: &shoalv1.Instance{Service: "web", Id: "web-1"}},
	}
	if diff := cmp.Diff(wantEvents, events, protocmp.Transform()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	got, err := ts.mesh.Status(ctx, &shoalv1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(status, got, protocmp.Transform()); diff != "" {
		t.Errorf("Status (-want +got):\n%s", diff)
	}
}
