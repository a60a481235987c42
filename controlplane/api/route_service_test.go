package api_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/shoal-mesh/shoal/controlplane/api"
	"github.com/shoal-mesh/shoal/controlplane/routes/routestest"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

func TestRouteCRUD(t *testing.T) {
	ts := startServer(t, api.Config{})
	ctx := testContext(t)
	rc := ts.routes

	created, err := rc.CreateRoute(ctx, &shoalv1.CreateRouteRequest{Route: routestest.Valid("web")})
	if err != nil {
		t.Fatalf("CreateRoute: %v", err)
	}
	want := routestest.Valid("web")
	want.Version = created.GetRoute().GetVersion()
	if diff := cmp.Diff(want, created.GetRoute(), protocmp.Transform()); diff != "" {
		t.Errorf("CreateRoute (-want +got):\n%s", diff)
	}
	got, err := rc.GetRoute(ctx, &shoalv1.GetRouteRequest{Name: "web"})
	if err != nil {
		t.Fatalf("GetRoute: %v", err)
	}
	if diff := cmp.Diff(want, got.GetRoute(), protocmp.Transform()); diff != "" {
		t.Errorf("GetRoute (-want +got):\n%s", diff)
	}
	_, err = rc.CreateRoute(ctx, &shoalv1.CreateRouteRequest{Route: routestest.Valid("web")})
	wantCode(t, err, codes.AlreadyExists)

	next := proto.CloneOf(want)
	next.Rules[1].Strategy = shoalv1.Strategy_STRATEGY_RANDOM
	updated, err := rc.UpdateRoute(ctx, &shoalv1.UpdateRouteRequest{Route: next})
	if err != nil {
		t.Fatalf("UpdateRoute: %v", err)
	}
	_, err = rc.UpdateRoute(ctx, &shoalv1.UpdateRouteRequest{Route: next})
	wantCode(t, err, codes.Aborted)
	_, err = rc.UpdateRoute(ctx, &shoalv1.UpdateRouteRequest{Route: routestest.Valid("missing")})
	wantCode(t, err, codes.NotFound)

	if _, err := rc.CreateRoute(ctx, &shoalv1.CreateRouteRequest{Route: routestest.Valid("api")}); err != nil {
		t.Fatal(err)
	}
	list, err := rc.ListRoutes(ctx, &shoalv1.ListRoutesRequest{})
	if err != nil {
		t.Fatalf("ListRoutes: %v", err)
	}
	var names []string
	for _, r := range list.GetRoutes() {
		names = append(names, r.GetName())
	}
	if diff := cmp.Diff([]string{"api", "web"}, names); diff != "" {
		t.Errorf("ListRoutes names (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(updated.GetRoute(), list.GetRoutes()[1], protocmp.Transform()); diff != "" {
		t.Errorf("listed web (-want +got):\n%s", diff)
	}

	_, err = rc.DeleteRoute(ctx, &shoalv1.DeleteRouteRequest{Name: "web", Version: want.GetVersion()})
	wantCode(t, err, codes.Aborted)
	if _, err := rc.DeleteRoute(ctx, &shoalv1.DeleteRouteRequest{Name: "web", Version: updated.GetRoute().GetVersion()}); err != nil {
		t.Fatalf("DeleteRoute: %v", err)
	}
	_, err = rc.GetRoute(ctx, &shoalv1.GetRouteRequest{Name: "web"})
	wantCode(t, err, codes.NotFound)
	if msg := status.Convert(err).Message(); msg != `route "web" not found` {
		t.Errorf("GetRoute of a deleted route: message %q, want it to name the route", msg)
	}
	_, err = rc.DeleteRoute(ctx, &shoalv1.DeleteRouteRequest{Name: "web"})
	wantCode(t, err, codes.NotFound)
}

func TestInvalidRequestsAreRejectedWithoutWrites(t *testing.T) {
	ts := startServer(t, api.Config{})
	ctx := testContext(t)
	existing, candidate, conflictField := routestest.Conflict("web", "web-canary")
	if _, err := ts.routes.CreateRoute(ctx, &shoalv1.CreateRouteRequest{Route: existing}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.routes.CreateRoute(ctx, &shoalv1.CreateRouteRequest{Route: routestest.Valid("web-canary")}); err != nil {
		t.Fatal(err)
	}
	type call func(context.Context) error
	create := func(r *shoalv1.Route) call {
		return func(ctx context.Context) error {
			_, err := ts.routes.CreateRoute(ctx, &shoalv1.CreateRouteRequest{Route: r})
			return err
		}
	}
	update := func(r *shoalv1.Route) call {
		return func(ctx context.Context) error {
			_, err := ts.routes.UpdateRoute(ctx, &shoalv1.UpdateRouteRequest{Route: r})
			return err
		}
	}
	tests := []struct {
		name     string
		call     call
		contains []string
	}{
		{"create without a route", create(nil), []string{"route is required"}},
		{"create of a route conflicting with another", create(withName(candidate, "web-canary-2")), []string{conflictField + ": ", "already routed by route"}},
		{"update into a conflict", update(candidate), []string{conflictField + ": "}},
		{"get with an invalid name", func(ctx context.Context) error {
			_, err := ts.routes.GetRoute(ctx, &shoalv1.GetRouteRequest{Name: "Web"})
			return err
		}, []string{"name: "}},
		{"delete with a malformed version", func(ctx context.Context) error {
			_, err := ts.routes.DeleteRoute(ctx, &shoalv1.DeleteRouteRequest{Name: "web", Version: "v1"})
			return err
		}, []string{"version: "}},
		{"update with a malformed version", update(withVersion(routestest.Valid("web"), "-3")), []string{"version: "}},
	}
	for _, tc := range routestest.Invalid("web") {
		tests = append(tests,
			struct {
				name     string
				call     call
				contains []string
			}{"create: " + tc.Name, create(tc.Route), []string{tc.Field + ": ", tc.Contains}},
			struct {
				name     string
				call     call
				contains []string
			}{"update: " + tc.Name, update(tc.Route), []string{tc.Field + ": ", tc.Contains}},
		)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.revision(t)
			wantCode(t, tc.call(testContext(t)), codes.InvalidArgument, tc.contains...)
			if after := ts.revision(t); after != before {
				t.Errorf("etcd revision %d -> %d: the invalid request wrote", before, after)
			}
		})
	}
	t.Run("a request over the 4 MiB limit is refused without writes", func(t *testing.T) {
		r := routestest.Valid("web")
		r.Hosts = append(r.Hosts, strings.Repeat("a", 5<<20))
		before := ts.revision(t)
		wantCode(t, create(r)(testContext(t)), codes.ResourceExhausted)
		if after := ts.revision(t); after != before {
			t.Errorf("etcd revision %d -> %d", before, after)
		}
	})
}

func withName(r *shoalv1.Route, name string) *shoalv1.Route {
	c := proto.CloneOf(r)
	c.Name = name
	return c
}

func withVersion(r *shoalv1.Route, v string) *shoalv1.Route {
	c := proto.CloneOf(r)
	c.Version = v
	return c
}

func TestRacingUpdatesExactlyOneWins(t *testing.T) {
	ts := startServer(t, api.Config{})
	ctx := testContext(t)
	if _, err := ts.routes.CreateRoute(ctx, &shoalv1.CreateRouteRequest{Route: routestest.Valid("web")}); err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		cur, err := ts.routes.GetRoute(ctx, &shoalv1.GetRouteRequest{Name: "web"})
		if err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 2)
		for i := range 2 {
			r := proto.CloneOf(cur.GetRoute())
			r.Rules[0].Timeout.Seconds = int64(round*2 + i + 1)
			go func() {
				_, err := ts.routes.UpdateRoute(ctx, &shoalv1.UpdateRouteRequest{Route: r})
				errs <- err
			}()
		}
		counts := map[codes.Code]int{}
		for range 2 {
			counts[status.Code(<-errs)]++
		}
		if counts[codes.OK] != 1 || counts[codes.Aborted] != 1 {
			t.Fatalf("round %d: codes %v, want one OK and one Aborted", round, counts)
		}
	}
}
