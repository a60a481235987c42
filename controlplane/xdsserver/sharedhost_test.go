package xdsserver

import (
	"context"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/shoal-mesh/shoal/controlplane/xds"
)

// TestServerServesRoutesSharingAHost pushes two routes for one host through
// the server to a delta client: both are served in one virtual host and
// both are accepted in RouteStatuses.
func TestServerServesRoutesSharingAHost(t *testing.T) {
	srv, addr := startServer(t, Config{})
	c := newDeltaClient(t, addr, &corev3.Node{Id: "envoy-1", UserAgentName: "envoy"})
	c.subscribe(resource.RouteType, xds.RouteOutbound)
	srv.Update(sharedHostInput())
	r := c.recv()
	if len(r.GetResources()) != 1 {
		t.Fatalf("got %v, want the outbound route configuration", resourceNames(r))
	}
	rc := &routev3.RouteConfiguration{}
	if err := r.GetResources()[0].GetResource().UnmarshalTo(rc); err != nil {
		t.Fatal(err)
	}
	var api []string
	for _, vh := range rc.GetVirtualHosts() {
		if slices.Contains(vh.GetDomains(), "api.example.com") {
			for _, rt := range vh.GetRoutes() {
				api = append(api, rt.GetName()+" "+rt.GetMatch().GetPrefix())
			}
		}
	}
	if want := []string{"orders-api/0 /orders", "users-by-id/0 /users/", "users-by-id/1 /v2/users/"}; !slices.Equal(api, want) {
		t.Errorf("api.example.com routes = %q, want %q", api, want)
	}
	// The statuses are recorded right after the push: wait for them.
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()
	for len(srv.RouteStatuses()) == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("no route statuses after the push")
		case <-time.After(time.Millisecond):
		}
	}
	accepted := map[string]bool{}
	for _, st := range srv.RouteStatuses() {
		accepted[st.GetName()] = st.GetAccepted()
	}
	if !accepted["orders-api"] || !accepted["users-by-id"] || accepted["zz-dup"] {
		t.Errorf("RouteStatuses accepted = %v, want orders-api and users-by-id but not zz-dup", accepted)
	}
}
