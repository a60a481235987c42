package controlplane_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-mesh/shoal/controlplane/routes"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/registry/etcdstore"
	"github.com/shoal-mesh/shoal/sidecar/xdsclient"
)

// bigRoute returns a valid route of about size encoded bytes: one rule per
// path prefix of about 32 KiB, all to service web. Few large rules keep the
// translation cheap (a thousand small ones took the test past a minute
// under -race on a loaded 2-core machine); the bytes are what it is about.
func bigRoute(name string, size int) *shoalv1.Route {
	r := &shoalv1.Route{Name: name, Hosts: []string{name}}
	add := func(i, n int) {
		r.Rules = append(r.Rules, &shoalv1.Rule{
			Match:        &shoalv1.Match{Path: &shoalv1.Match_Prefix{Prefix: fmt.Sprintf("/%d/%s", i, strings.Repeat("p", n))}},
			Destinations: []*shoalv1.Destination{{Service: "web"}},
		})
	}
	i := 0
	for ; proto.Size(r) < size-(33<<10); i++ {
		add(i, 32<<10)
	}
	// The last rule fills up to size.
	if rest := size - proto.Size(r) - 64; rest > 0 {
		add(i, rest)
	}
	return r
}

// Issue 16: two routes of ~1 MiB each, both accepted, made an 8.2 MB xDS
// response; every sidecar's stream failed on gRPC's 4 MiB receive limit,
// over and over, so no later change reached it. Now all routes together
// are bounded (the API refuses a third, the control plane leaves out and
// names one written around the API), a sidecar accepts what the control
// plane may send for routes up to that bound (the 8.2 MB response), and
// every change after it reaches the sidecar.
func TestOversizedRoutesNeverStopConfigReachingSidecars(t *testing.T) {
	srv, _ := start(t)
	a := srv.Addrs()
	waitReady(t, a.Admin)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	conn, err := grpc.NewClient(a.API, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc := shoalv1.NewRouteServiceClient(conn)

	// The two routes of ~1 MiB each are accepted...
	for _, name := range []string{"big-a", "big-b"} {
		r := bigRoute(name, routes.MaxRouteSize-4096)
		if _, err := rc.CreateRoute(ctx, &shoalv1.CreateRouteRequest{Route: r}); err != nil {
			t.Fatalf("CreateRoute(%s, %d bytes) = %v, want it accepted", name, proto.Size(r), err)
		}
	}
	// ...and nothing more: all routes together are bounded.
	third := bigRoute("big-c", 64<<10)
	_, err = rc.CreateRoute(ctx, &shoalv1.CreateRouteRequest{Route: third})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `route "big-c"`) || !strings.Contains(err.Error(), "2 MiB") {
		t.Fatalf("CreateRoute(big-c) = %v, want InvalidArgument naming big-c and the 2 MiB limit", err)
	}
	if got, err := srv.Client().Get(ctx, routes.Key("big-c")); err != nil || len(got.Kvs) != 0 {
		t.Fatalf("etcd has big-c after a refused create: %v, %v", got, err)
	}

	// Around the API, straight into etcd: served without it, and named.
	js, err := protojson.Marshal(third)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client().Put(ctx, routes.Key("big-c"), string(js)); err != nil {
		t.Fatal(err)
	}
	mc := shoalv1.NewMeshServiceClient(conn)
	var cStatus *shoalv1.RouteStatus
	pollUntil(t, ctx, "big-c reported as left out", func() bool {
		st, err := mc.Status(ctx, &shoalv1.StatusRequest{})
		if err != nil {
			return false
		}
		for _, r := range st.GetRoutes() {
			if r.GetName() == "big-c" {
				cStatus = r
			}
		}
		return cStatus != nil && !cStatus.GetAccepted()
	})
	if !strings.Contains(cStatus.GetError(), "over the 2097152-byte limit") {
		t.Errorf("big-c status error = %q, want it to say the routes are over the limit", cStatus.GetError())
	}

	// A sidecar over state-of-the-world xDS (its route response holds every
	// route configuration at once, the largest response there is).
	var last atomic.Pointer[xdsclient.Snapshot]
	xc, err := xdsclient.New(xdsclient.Config{
		Server: a.XDS, Mode: xdsclient.ModeSotW,
		Node:        xdsclient.NewNode(xdsclient.NodeInfo{ID: "web-1", Cluster: "web", Service: "web", InstanceID: "web-1", Zone: "local"}),
		DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		OnUpdate:    func(s *xdsclient.Snapshot) { last.Store(s) },
	})
	if err != nil {
		t.Fatal(err)
	}
	xctx, xcancel := context.WithCancel(context.Background())
	xdone := make(chan error, 1)
	go func() { xdone <- xc.Run(xctx) }()
	defer func() { xcancel(); <-xdone }()
	pollUntil(t, ctx, "the sidecar gets its routes", func() bool {
		s := last.Load()
		return s != nil && s.Has(resource.RouteType, "outbound")
	})

	// A later change (a new service) still reaches it.
	reg, err := etcdstore.New(srv.Client(), nil).Register(ctx,
		registry.Instance{ID: "late-1", Service: "late", Address: "127.0.0.1", Port: 3009}, registry.RegisterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	pollUntil(t, ctx, "the new service reaches the sidecar", func() bool {
		s := last.Load()
		return s != nil && s.Has(resource.EndpointType, "late") && s.Has(resource.ClusterType, "late")
	})
}

// pollUntil polls cond until it holds or ctx is done.
func pollUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
