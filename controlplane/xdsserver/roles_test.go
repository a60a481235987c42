package xdsserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	// The bootstraps' typed_extension_protocol_options.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/yaml"

	"github.com/shoal-mesh/shoal/controlplane/xds"
)

func roleNode(t *testing.T, id string, md map[string]any) *corev3.Node {
	t.Helper()
	s, err := structpb.NewStruct(md)
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.Node{Id: id, UserAgentName: "envoy", Metadata: s}
}

// listenerAddrs decodes listeners, checks each with ValidateAll (what
// Envoy would accept) and returns name -> "address:port" ("api" for an API
// listener).
func listenerAddrs(t *testing.T, anys []*anypb.Any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range anys {
		l := &listenerv3.Listener{}
		if err := a.UnmarshalTo(l); err != nil {
			t.Fatal(err)
		}
		if err := l.ValidateAll(); err != nil {
			t.Errorf("listener %s: ValidateAll: %v", l.GetName(), err)
		}
		addr := "api"
		if sa := l.GetAddress().GetSocketAddress(); sa != nil {
			addr = fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())
		}
		out[l.GetName()] = addr
	}
	return out
}

// Issue 16: two Envoys on one host, a sidecar and a gateway, each asking
// for its role's listeners on its own ports through node metadata, over
// delta and SotW. Neither gets the other's listeners or a default port; a
// node without metadata keeps getting everything at the defaults.
func TestListenersFollowTheNodeRole(t *testing.T) {
	srv, addr := startServer(t, Config{})
	srv.Update(xds.Input{Endpoints: ordersFleet()})

	sidecar := newDeltaClient(t, addr, roleNode(t, "envoy-sidecar", map[string]any{
		xds.MetadataRole: xds.RoleSidecar, xds.MetadataInboundPort: 15106, xds.MetadataOutboundPort: "15101",
	}))
	sidecar.subscribe(resource.ListenerType)
	var sidecarAnys []*anypb.Any
	for _, r := range sidecar.recv().GetResources() {
		sidecarAnys = append(sidecarAnys, r.GetResource())
	}
	gateway := newSotwClient(t, addr, roleNode(t, "envoy-gateway", map[string]any{xds.MetadataRole: xds.RoleGateway, xds.MetadataGatewayPort: 8081}))
	gateway.subscribe(resource.ListenerType)
	plain := newSotwClient(t, addr, &corev3.Node{Id: "shoal-sidecar-1", UserAgentName: "shoal-sidecar"})
	plain.subscribe(resource.ListenerType)

	got := map[string]map[string]string{
		"sidecar": listenerAddrs(t, sidecarAnys),
		"gateway": listenerAddrs(t, gateway.recv().GetResources()),
		"plain":   listenerAddrs(t, plain.recv().GetResources()),
	}
	want := map[string]map[string]string{
		"sidecar": {xds.ListenerInbound: "0.0.0.0:15106", xds.ListenerOutbound: "127.0.0.1:15101"},
		"gateway": {xds.ListenerGateway: "0.0.0.0:8081"},
		"plain": {
			xds.ListenerInbound: "0.0.0.0:15006", xds.ListenerOutbound: "127.0.0.1:15001", xds.ListenerGateway: "0.0.0.0:8080",
			"orders": "api", "users": "api",
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("listeners per node (-want +got):\n%s", diff)
	}
	var bound []string
	for _, node := range []string{"sidecar", "gateway"} {
		for _, a := range got[node] {
			_, port, _ := strings.Cut(a, ":")
			if slices.Contains(bound, port) {
				t.Errorf("port %s is bound by both Envoys", port)
			}
			bound = append(bound, port)
		}
	}

	// A later change reaches the variant too: a new service adds no
	// listener for a role node (no API listeners), so nothing is sent...
	eps := append(ordersFleet(), ordersFleet()[0])
	eps[len(eps)-1].Service, eps[len(eps)-1].ID = "billing", "billing-1"
	srv.Update(xds.Input{Endpoints: eps})
	if r := plain.recv(); !slices.ContainsFunc(r.GetResources(), func(a *anypb.Any) bool {
		l := &listenerv3.Listener{}
		return a.UnmarshalTo(l) == nil && l.GetName() == "billing"
	}) {
		t.Errorf("the plain node did not get the new API listener billing")
	}
	sidecar.expectNothing()
}

func TestInvalidRoleMetadataIsRefusedNamingTheKey(t *testing.T) {
	tests := []struct {
		name    string
		md      map[string]any
		wantErr string
	}{
		{name: "unknown role", md: map[string]any{xds.MetadataRole: "mesh"}, wantErr: `shoal.role: "mesh" is not "sidecar" or "gateway"`},
		{name: "port out of range", md: map[string]any{xds.MetadataRole: xds.RoleSidecar, xds.MetadataInboundPort: 70000}, wantErr: "shoal.inbound_port: 70000 is not a port"},
		{name: "port not a number", md: map[string]any{xds.MetadataRole: xds.RoleGateway, xds.MetadataGatewayPort: "http"}, wantErr: `shoal.gateway_port: "http" is not a port`},
		{name: "port of another role", md: map[string]any{xds.MetadataRole: xds.RoleGateway, xds.MetadataInboundPort: 15106}, wantErr: `shoal.inbound_port: set for role "sidecar"`},
		{name: "port without a role", md: map[string]any{xds.MetadataOutboundPort: 15101}, wantErr: `shoal.outbound_port: set for role "sidecar", but shoal.role is ""`},
	}
	srv, addr := startServer(t, Config{})
	srv.Update(xds.Input{Endpoints: ordersFleet()})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
			defer cancel()
			stream, err := dialADS(t, addr).StreamAggregatedResources(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: roleNode(t, "bad", tc.md), TypeUrl: resource.ListenerType}); err != nil {
				t.Fatal(err)
			}
			_, err = stream.Recv()
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Recv() = %v, want InvalidArgument containing %q", err, tc.wantErr)
			}
		})
	}
}

// exampleBootstrap reads an Envoy bootstrap of examples/envoy and checks it
// with ValidateAll, as Envoy would.
func exampleBootstrap(t *testing.T, name string) *bootstrapv3.Bootstrap {
	t.Helper()
	y, err := os.ReadFile(filepath.Join("..", "..", "examples", "envoy", name))
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(j, b); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("%s: ValidateAll: %v", name, err)
	}
	return b
}

// The README's two Envoys on one host (examples/envoy): each bootstrap is
// valid, and what each binds — its admin port and the listeners the control
// plane renders for its node — collides neither with the other's nor with a
// shoal sidecar's defaults (admin 15000, outbound 15001).
func TestEnvoyExamplesRunSideBySide(t *testing.T) {
	srv, addr := startServer(t, Config{})
	srv.Update(xds.Input{Endpoints: ordersFleet()})
	seen := map[uint32]string{15000: "a shoal sidecar's admin", 15001: "a shoal sidecar's outbound"}
	bind := func(who string, port uint32) {
		if other, ok := seen[port]; ok {
			t.Errorf("%s binds port %d, as does %s", who, port, other)
		}
		seen[port] = who
	}
	for _, file := range []string{"sidecar.yaml", "gateway.yaml"} {
		b := exampleBootstrap(t, file)
		bind(file+" admin", b.GetAdmin().GetAddress().GetSocketAddress().GetPortValue())
		c := newSotwClient(t, addr, b.GetNode())
		c.subscribe(resource.ListenerType)
		ls := listenerAddrs(t, c.recv().GetResources())
		if len(ls) == 0 {
			t.Errorf("%s: no listeners", file)
		}
		for name, a := range ls {
			_, p, _ := strings.Cut(a, ":")
			n, err := strconv.ParseUint(p, 10, 32)
			if err != nil {
				t.Fatalf("%s: listener %s at %q", file, name, a)
			}
			bind(file+" listener "+name, uint32(n))
		}
	}
}
