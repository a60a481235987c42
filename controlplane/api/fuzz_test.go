package api_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-mesh/shoal/controlplane/api"
	"github.com/shoal-mesh/shoal/controlplane/routes"
	"github.com/shoal-mesh/shoal/controlplane/routes/routestest"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// The fuzz targets feed arbitrary bytes, decoded as each request type, to
// the real server over loopback and real etcd. Every call either succeeds
// with a route that passes validation, or fails without writing to etcd;
// an invalid route always fails with InvalidArgument. The seed corpus runs
// as part of go test.

// seedRoutes are the valid fixture and a selection of invalid ones (not the
// 1 MiB one: large inputs make mutation slow).
func seedRoutes() []*shoalv1.Route {
	out := []*shoalv1.Route{routestest.Valid("web")}
	for _, tc := range routestest.Invalid("web") {
		if proto.Size(tc.Route) < 4096 {
			out = append(out, tc.Route)
		}
	}
	return out
}

func addSeeds(f *testing.F, wrap func(*shoalv1.Route) proto.Message) {
	for _, r := range seedRoutes() {
		b, err := proto.Marshal(wrap(r))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// checkWrite checks the outcome of a write of r.
func checkWrite(t *testing.T, ts *testServer, before int64, r, got *shoalv1.Route, err error) {
	t.Helper()
	invalid := routes.Validate(r)
	switch {
	case err == nil && invalid != nil:
		t.Fatalf("invalid route accepted (%v)", invalid)
	case err == nil:
		if verr := routes.Validate(got); verr != nil {
			t.Fatalf("returned route is invalid: %v", verr)
		}
	case invalid != nil && status.Code(err) != codes.InvalidArgument:
		t.Fatalf("invalid route (%v) got %v, want InvalidArgument", invalid, err)
	default:
		if after := ts.revision(t); after != before {
			t.Fatalf("failed write (%v) changed the revision %d -> %d", err, before, after)
		}
	}
}

func FuzzCreateRoute(f *testing.F) {
	addSeeds(f, func(r *shoalv1.Route) proto.Message { return &shoalv1.CreateRouteRequest{Route: r} })
	ts := startServer(f, api.Config{})
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &shoalv1.CreateRouteRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		ctx := context.Background()
		before := ts.revision(t)
		resp, err := ts.routes.CreateRoute(ctx, req)
		checkWrite(t, ts, before, req.GetRoute(), resp.GetRoute(), err)
		if err == nil { // leave etcd empty for the next input
			if _, err := ts.routes.DeleteRoute(ctx, &shoalv1.DeleteRouteRequest{Name: resp.GetRoute().GetName()}); err != nil {
				t.Fatalf("DeleteRoute: %v", err)
			}
		}
	})
}

func FuzzUpdateRoute(f *testing.F) {
	addSeeds(f, func(r *shoalv1.Route) proto.Message { return &shoalv1.UpdateRouteRequest{Route: r} })
	ts := startServer(f, api.Config{})
	if _, err := ts.routes.CreateRoute(context.Background(), &shoalv1.CreateRouteRequest{Route: routestest.Valid("web")}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &shoalv1.UpdateRouteRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		before := ts.revision(t)
		resp, err := ts.routes.UpdateRoute(context.Background(), req)
		checkWrite(t, ts, before, req.GetRoute(), resp.GetRoute(), err)
	})
}

func FuzzDeleteRoute(f *testing.F) {
	for _, req := range []*shoalv1.DeleteRouteRequest{{Name: "web"}, {Name: "web", Version: "1"}, {Name: "Web"}, {Name: "web", Version: "x"}, {}} {
		b, _ := proto.Marshal(req)
		f.Add(b)
	}
	ts := startServer(f, api.Config{})
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &shoalv1.DeleteRouteRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		ctx := context.Background()
		if _, err := ts.routes.CreateRoute(ctx, &shoalv1.CreateRouteRequest{Route: routestest.Valid("web")}); err != nil && status.Code(err) != codes.AlreadyExists {
			t.Fatal(err)
		}
		before := ts.revision(t)
		_, err := ts.routes.DeleteRoute(ctx, req)
		switch code := status.Code(err); code {
		case codes.OK, codes.NotFound, codes.Aborted, codes.InvalidArgument:
		default:
			t.Fatalf("DeleteRoute = %v", err)
		}
		if err != nil {
			if after := ts.revision(t); after != before {
				t.Fatalf("failed delete (%v) changed the revision %d -> %d", err, before, after)
			}
		}
	})
}

func FuzzGetRoute(f *testing.F) {
	for _, name := range []string{"web", "", "Web", "a/b", "../x"} {
		b, _ := proto.Marshal(&shoalv1.GetRouteRequest{Name: name})
		f.Add(b)
	}
	ts := startServer(f, api.Config{})
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &shoalv1.GetRouteRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		_, err := ts.routes.GetRoute(context.Background(), req)
		if code := status.Code(err); code != codes.NotFound && code != codes.InvalidArgument {
			t.Fatalf("GetRoute(%q) = %v", req.GetName(), err)
		}
	})
}
