package controlplane_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-mesh/shoal/internal/testutil/browser"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/registry/etcdstore"
)

func lrsEndpoint(port uint32, ok, failed uint64) *endpointv3.UpstreamEndpointStats {
	return &endpointv3.UpstreamEndpointStats{
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		}}},
		TotalSuccessfulRequests: ok, TotalErrorRequests: failed, TotalIssuedRequests: ok + failed,
	}
}

// sendLoad reports load over LRS on the control plane's xDS port, as a
// proxy (a shoal sidecar or Envoy) does, and closes the stream.
func sendLoad(t *testing.T, ctx context.Context, xdsAddr string, node *corev3.Node, stats ...*endpointv3.ClusterStats) {
	t.Helper()
	cc, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	stream, err := lrsv3.NewLoadReportingServiceClient(cc).StreamLoadStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&lrsv3.LoadStatsRequest{Node: node}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("LRS response: %v", err)
	}
	if err := stream.Send(&lrsv3.LoadStatsRequest{Node: node, ClusterStats: stats}); err != nil {
		t.Fatal(err)
	}
	stream.CloseSend()
	stream.Recv() // wait for the server to finish the stream
}

// The dashboard shows what the API knows: services, instances with health,
// edges from LRS reports with their rates, and each instance's share of a
// strategy's traffic — rendered by a real browser.
func TestDashboard(t *testing.T) {
	srv, _ := start(t)
	a := srv.Addrs()
	waitReady(t, a.Admin)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	store := etcdstore.New(srv.Client(), nil)
	for i, id := range []string{"web-1", "web-2", "web-3"} {
		reg, err := store.Register(ctx, registry.Instance{ID: id, Service: "web", Address: "127.0.0.1", Port: 3001 + i}, registry.RegisterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
	}
	// The gateway sent 60 requests round robin and 40 with least request.
	sendLoad(t, ctx, a.XDS, &corev3.Node{Id: "gateway-1", Cluster: "gateway"},
		&endpointv3.ClusterStats{ClusterName: "web", ClusterServiceName: "web", UpstreamLocalityStats: []*endpointv3.UpstreamLocalityStats{{
			UpstreamEndpointStats: []*endpointv3.UpstreamEndpointStats{lrsEndpoint(3001, 20, 0), lrsEndpoint(3002, 20, 0), lrsEndpoint(3003, 19, 1)},
		}}},
		&endpointv3.ClusterStats{ClusterName: "web/least_request", ClusterServiceName: "web", UpstreamLocalityStats: []*endpointv3.UpstreamLocalityStats{{
			UpstreamEndpointStats: []*endpointv3.UpstreamEndpointStats{lrsEndpoint(3001, 30, 0), lrsEndpoint(3002, 10, 0)},
		}}})

	t.Run("Traffic returns the edge and each instance's share per strategy", func(t *testing.T) {
		cc, err := grpc.NewClient(a.API, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		tr, err := shoalv1.NewMeshServiceClient(cc).Traffic(ctx, &shoalv1.TrafficRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(tr.GetEdges()) != 1 {
			t.Fatalf("edges = %v, want gateway -> web", tr.GetEdges())
		}
		e := tr.GetEdges()[0]
		if e.GetSource() != "gateway" || e.GetDestination() != "web" || e.GetRequests() != 100 || e.GetErrors() != 1 || e.GetSuccessRate() != 0.99 {
			t.Errorf("edge = %v, want gateway -> web, 100 requests, 1 error, 99%%", e)
		}
		shares := map[string]float64{}
		for _, ep := range tr.GetEndpoints() {
			shares[ep.GetStrategy()+" "+ep.GetInstanceId()] = ep.GetShare()
		}
		if shares["least_request web-1"] != 0.75 || shares["round_robin web-2"] != 1.0/3 {
			t.Errorf("shares = %v, want least_request web-1 0.75, round_robin web-2 1/3", shares)
		}
	})

	t.Run("the mesh document is the API's responses in protojson", func(t *testing.T) {
		resp, err := http.Get("http://" + a.Admin + "/ui/api/mesh")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc struct {
			Status    struct{ Ready bool }
			Services  struct{ Services []struct{ Name string } }
			Instances struct{ Instances []struct{ ID string } }
			Traffic   struct {
				Edges []struct{ Source, Destination string }
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		if !doc.Status.Ready || len(doc.Services.Services) != 1 || len(doc.Instances.Instances) != 3 || len(doc.Traffic.Edges) != 1 {
			t.Errorf("mesh document = %+v", doc)
		}
	})

	t.Run("a browser renders services, instances and the edge", func(t *testing.T) {
		dom, shot := browser.Render(t, ctx, "http://"+a.Admin+"/ui/")
		for _, want := range []string{
			`data-loaded="true"`,
			`class="service" data-service="web"`,
			`data-instance="web-1"`, `data-instance="web-2"`, `data-instance="web-3"`,
			`data-source="gateway" data-destination="web"`,
			`data-strategy="least_request" data-share="0.7500"`,
		} {
			if !strings.Contains(dom, want) {
				t.Errorf("rendered page lacks %s", want)
			}
		}
		if strings.Contains(dom, `<td class="rps">0.0</td>`) {
			t.Error("the edge shows a zero rate")
		}
		t.Logf("screenshot: %s", shot)
	})
}
