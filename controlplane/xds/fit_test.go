package xds

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-mesh/shoal/controlplane/routes"
	"github.com/shoal-mesh/shoal/internal/xdslimit"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// Issue 16, the way around the total bound: one large route whose hosts
// other small routes share is repeated in the virtual host of each shared
// host, so 1 MiB of routes became more than an xDS response may carry. The
// translation leaves out the last routes by name until the configurations
// fit, names them, and keeps the rest, the large route included.
func TestRouteConfigurationsFitAnXDSResponse(t *testing.T) {
	// A smaller limit than the real one (31 MiB) keeps the test fast; the
	// real one is checked against xdslimit below.
	if maxRouteConfigBytes != xdslimit.MaxMessageSize-1<<20 {
		t.Fatalf("maxRouteConfigBytes = %d, want xdslimit.MaxMessageSize less 1 MiB", maxRouteConfigBytes)
	}
	defer func(v int) { maxRouteConfigBytes = v }(maxRouteConfigBytes)
	maxRouteConfigBytes = 2 << 20
	const shared = 30
	big := route("a-big", nil)
	for i := range shared {
		big.Hosts = append(big.Hosts, fmt.Sprintf("h%d.example.com", i))
	}
	pad := strings.Repeat("p", 1000)
	for i := 0; proto.Size(big) < 100<<10; i++ {
		r := rule(0, to("orders"))
		r.Match = &shoalv1.Match{Path: &shoalv1.Match_Prefix{Prefix: fmt.Sprintf("/%d/%s", i, pad)}}
		big.Rules = append(big.Rules, r)
	}
	in := Input{Endpoints: ordersFleet(), Routes: []*shoalv1.Route{big}}
	for i := range shared {
		r := rule(0, to("users"))
		r.Match = &shoalv1.Match{Path: &shoalv1.Match_Prefix{Prefix: "/small"}}
		in.Routes = append(in.Routes, route(fmt.Sprintf("b-%02d", i), []string{fmt.Sprintf("h%d.example.com", i)}, r))
	}
	total := 0
	for _, r := range in.Routes {
		total += proto.Size(r)
	}
	if total > routes.MaxTotalSize {
		t.Fatalf("input is %d bytes, over routes.MaxTotalSize: the test must stay within what the API accepts", total)
	}

	res, statuses := Translate(in, CapabilitiesEnvoy)
	if n := resourcesSize(res.Routes); n > maxRouteConfigBytes {
		t.Fatalf("route configurations are %d bytes, over %d", n, maxRouteConfigBytes)
	}
	var left []string
	for _, st := range statuses {
		if st.GetAccepted() {
			continue
		}
		left = append(left, st.GetName())
		if !strings.Contains(st.GetError(), "over the 2097152-byte limit of an xDS response") {
			t.Errorf("%s: error %q does not say why it was left out", st.GetName(), st.GetError())
		}
	}
	if len(left) == 0 || len(left) == shared {
		t.Fatalf("left out %v: want some, not all, of the routes sharing a-big's hosts", left)
	}
	if left[len(left)-1] != fmt.Sprintf("b-%02d", shared-1) || left[0] == "a-big" {
		t.Errorf("left out %v: want the last ones by name", left)
	}
	t.Logf("%d bytes of routes; %d routes left out; route configurations %d bytes", total, len(left), resourcesSize(res.Routes))
}
