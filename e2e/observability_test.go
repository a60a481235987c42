package e2e

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/e2e/harness"
	"github.com/shoal-mesh/shoal/internal/testutil/browser"
)

// TestLoadReportsMakeTheMeshVisible: sidecars and the gateway report their
// load to the control plane over LRS; its per-edge counters match the
// requests sent, `shoal top` shows the edges, and the dashboard rendered by
// a real browser shows the services, instances and an edge with a rate.
func TestLoadReportsMakeTheMeshVisible(t *testing.T) {
	m := harness.StartMesh(t, 3, harness.MeshOptions{Gateway: true})
	const viaClient, viaGateway = 600, 300
	if r := harness.RunLoad(t, harness.LoadOptions{URL: m.URL(), Requests: viaClient, Concurrency: 4}); r.Failures() != 0 {
		t.Fatalf("through the client sidecar: %s", r)
	}
	if r := harness.RunLoad(t, harness.LoadOptions{URL: "http://" + m.Gateway.Listen, Host: "web", Requests: viaGateway, Concurrency: 4}); r.Failures() != 0 {
		t.Fatalf("through the gateway: %s", r)
	}

	edge := func(source, result string) float64 {
		return sample(scrape(t, m.CP.Admin), "shoal_controlplane_edge_requests_total",
			map[string]string{"source": source, "destination": "web", "result": result})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for ctx.Err() == nil && (edge("client", "success") < viaClient || edge("gateway", "success") < viaGateway) {
		time.Sleep(200 * time.Millisecond)
	}
	// Every request was one upstream attempt: the edges match exactly
	// (the issue allows ±1 %).
	for _, c := range []struct {
		source string
		want   float64
	}{{"client", viaClient}, {"gateway", viaGateway}} {
		if got := edge(c.source, "success"); got != c.want {
			t.Errorf("edge %s -> web: %v successful requests reported, want %v", c.source, got, c.want)
		}
		if got := edge(c.source, "error"); got != 0 {
			t.Errorf("edge %s -> web: %v errors reported, want 0", c.source, got)
		}
	}

	t.Run("shoal top shows the edges and each instance's share", func(t *testing.T) {
		out, stderr, code := harness.Shoal(t, "top", "--once", "--api", m.CP.API)
		if code != 0 {
			t.Fatalf("shoal top: exit %d: %s", code, stderr)
		}
		for _, want := range []string{"WEB (3/3 healthy)", "web-1", "web-2", "web-3", "ROUND_ROBIN", "client", "gateway"} {
			if !strings.Contains(out, want) {
				t.Errorf("shoal top lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("the dashboard shows the edge in a browser", func(t *testing.T) {
		dom, shot := browser.Render(t, ctx, "http://"+m.CP.Admin+"/ui/")
		for _, want := range []string{
			`data-loaded="true"`, `data-service="web"`,
			`data-instance="web-1"`, `data-instance="web-2"`, `data-instance="web-3"`,
			`data-source="client" data-destination="web"`, `data-source="gateway" data-destination="web"`,
		} {
			if !strings.Contains(dom, want) {
				t.Errorf("rendered dashboard lacks %s", want)
			}
		}
		rates := regexp.MustCompile(`data-source="client" data-destination="web"><td>client</td><td>web</td><td class="rps">([0-9.]+)</td>`).FindStringSubmatch(dom)
		if rates == nil {
			t.Fatal("no rate for the client -> web edge in the table")
		}
		if r, _ := strconv.ParseFloat(rates[1], 64); r <= 0 {
			t.Errorf("client -> web rate = %s, want > 0", rates[1])
		}
		t.Logf("screenshot: %s", shot)
	})
}
