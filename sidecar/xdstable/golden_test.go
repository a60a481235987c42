package xdstable_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/shoal-mesh/shoal/sidecar/internal/xdsres"
	"github.com/shoal-mesh/shoal/sidecar/xdsclient"
	"github.com/shoal-mesh/shoal/sidecar/xdstable"
)

// TestGoldenFilesBuildTheTablesGoControlPlaneReads feeds every golden case
// of the control plane (controlplane/xds/testdata, its real output) through
// go-control-plane's types and through the sidecar's generated subset, and
// checks that the table the sidecar builds has what go-control-plane reads:
// per route configuration its virtual hosts and domains, per cluster its
// endpoint addresses.
func TestGoldenFilesBuildTheTablesGoControlPlaneReads(t *testing.T) {
	files, err := filepath.Glob("../../controlplane/xds/testdata/*.golden")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			raw := map[string]map[string][]byte{}
			var gcpRoutes []*routev3.RouteConfiguration
			gcpClusters := map[string]*clusterv3.Cluster{}
			gcpCLAs := map[string]*endpointv3.ClusterLoadAssignment{}
			for _, a := range goldenAnys(t, path) {
				m, err := a.UnmarshalNew() // go-control-plane's types
				if err != nil {
					t.Fatal(err)
				}
				b, err := proto.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				d, err := xdsres.Decode(a.GetTypeUrl(), b) // the sidecar's
				if err != nil {
					t.Fatalf("%s: %v", a.GetTypeUrl(), err)
				}
				if raw[a.GetTypeUrl()] == nil {
					raw[a.GetTypeUrl()] = map[string][]byte{}
				}
				raw[a.GetTypeUrl()][xdsres.Name(d)] = b
				switch m := m.(type) {
				case *routev3.RouteConfiguration:
					gcpRoutes = append(gcpRoutes, m)
				case *clusterv3.Cluster:
					gcpClusters[m.GetName()] = m
				case *endpointv3.ClusterLoadAssignment:
					gcpCLAs[m.GetClusterName()] = m
				}
			}
			s := xdsclient.NewSnapshot(raw)
			for _, rc := range gcpRoutes {
				tbl, err := xdstable.Build(s, xdstable.Options{RouteConfig: rc.GetName()})
				if err != nil && !strings.Contains(path, "rejected") {
					t.Errorf("route config %q: %v", rc.GetName(), err)
				}
				if tbl == nil {
					t.Fatalf("route config %q: no table", rc.GetName())
				}
				var want, got []string
				for _, vh := range rc.GetVirtualHosts() {
					want = append(want, vh.GetName()+"="+strings.Join(vh.GetDomains(), ","))
				}
				for _, vh := range tbl.VirtualHosts() {
					got = append(got, vh.Name+"="+strings.Join(vh.Domains, ","))
				}
				if !slices.Equal(want, got) {
					t.Errorf("route config %q: virtual hosts %v, go-control-plane reads %v", rc.GetName(), got, want)
				}
				for name, c := range gcpClusters {
					tc := tbl.Cluster(name)
					if tc == nil {
						t.Errorf("cluster %q missing from the table", name)
						continue
					}
					cla := c.GetEdsClusterConfig().GetServiceName()
					if cla == "" {
						cla = name
					}
					var wantEP []string
					for _, l := range gcpCLAs[cla].GetEndpoints() {
						for _, e := range l.GetLbEndpoints() {
							sa := e.GetEndpoint().GetAddress().GetSocketAddress()
							wantEP = append(wantEP, net.JoinHostPort(sa.GetAddress(), fmt.Sprint(sa.GetPortValue())))
						}
					}
					var gotEP []string
					for _, e := range tc.Endpoints {
						gotEP = append(gotEP, e.Address)
					}
					if !slices.Equal(wantEP, gotEP) {
						t.Errorf("cluster %q: endpoints %v, go-control-plane reads %v", name, gotEP, wantEP)
					}
				}
			}
		})
	}
}

// goldenAnys reads the resources of a golden file ("# group" lines, each
// followed by protojson Anys); statuses are skipped.
func goldenAnys(t *testing.T, path string) []*anypb.Any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*anypb.Any
	var group string
	var buf bytes.Buffer
	flush := func() {
		defer buf.Reset()
		if group == "statuses" {
			return
		}
		dec := json.NewDecoder(&buf)
		for dec.More() {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			a := &anypb.Any{}
			if err := protojson.Unmarshal(raw, a); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			out = append(out, a)
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if g, ok := strings.CutPrefix(sc.Text(), "# "); ok {
			flush()
			group = g
			continue
		}
		buf.WriteString(sc.Text() + "\n")
	}
	flush()
	return out
}
