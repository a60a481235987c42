package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/e2e/harness"
	"github.com/shoal-mesh/shoal/internal/testutil/browser"
	"github.com/shoal-mesh/shoal/registry"
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
		time.Sleep(200 * time.Millisecond) // poll interval of a loop with a deadline
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

// TestAccessLogFlags: a sidecar with --access-log writes one line per
// request in Envoy's format, with the response flag that says why: NR for
// a host no route or service matches, UF for an instance that refuses
// connections, and the upstream host for a request that was served.
func TestAccessLogFlags(t *testing.T) {
	m := harness.StartMesh(t, 1, harness.MeshOptions{})
	logFile := filepath.Join(t.TempDir(), "access.log")
	sc := harness.StartSidecar(t, harness.SidecarOptions{
		CP: m.CP, Service: "caller", InstanceID: "caller-1", AppPort: harness.FreePort(t), NoRegister: true,
		Outbound: true, Extra: []string{"--access-log", logFile},
	})
	// An instance of "dead" whose port nothing listens on.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cli := m.CP.EtcdClient(t)
	if _, err := cli.Do(ctx, harness.PutInstance(t, registry.Instance{ID: "dead-1", Service: "dead", Address: "127.0.0.1", Port: harness.FreePort(t)})); err != nil {
		t.Fatal(err)
	}
	m.WaitRoutable(t, sc, "web", 0)
	for ctx.Err() == nil && len(sc.RoutableEndpoints("dead")) == 0 {
		time.Sleep(50 * time.Millisecond) // poll interval of a loop with a deadline
	}
	client := harness.NewHTTPClient("")
	url := "http://" + sc.Outbound + "/path?q=1"
	for _, c := range []struct {
		host string
		want int
	}{{"web", 200}, {"nosuch", 404}, {"dead", 502}} {
		if _, code, err := harness.Fetch(ctx, client, "GET", url, c.host, http.Header{"User-Agent": {"e2e-" + c.host}}, 5*time.Second); err != nil || code != c.want {
			t.Fatalf("GET Host %s: %d, %v; want %d", c.host, code, err, c.want)
		}
	}
	// Lines are written within the flush interval (100 ms).
	var lines []string
	for ctx.Err() == nil {
		b, _ := os.ReadFile(logFile)
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) >= 3 {
			break
		}
		time.Sleep(50 * time.Millisecond) // poll interval of a loop with a deadline
	}
	want := map[string]*regexp.Regexp{
		"web":    regexp.MustCompile(`^\[\S+\] "GET /path\?q=1 HTTP/1\.1" 200 - 0 (\d+|-) \d+ - "-" "e2e-web" "[0-9a-f-]{36}" "web" "` + regexp.QuoteMeta(m.Addr(0)) + `"$`),
		"nosuch": regexp.MustCompile(`^\[\S+\] "GET /path\?q=1 HTTP/1\.1" 404 NR 0 - \d+ - "-" "e2e-nosuch" "-" "nosuch" "-"$`),
		"dead":   regexp.MustCompile(`^\[\S+\] "GET /path\?q=1 HTTP/1\.1" 502 UF(,URX)? 0 - \d+ - "-" "e2e-dead" "[0-9a-f-]{36}" "dead" "127\.0\.0\.1:\d+"$`),
	}
	for host, re := range want {
		found := false
		for _, ln := range lines {
			found = found || re.MatchString(ln)
		}
		if !found {
			t.Errorf("no access log line for Host %s matching %s in:\n%s", host, re, strings.Join(lines, "\n"))
		}
	}
}
