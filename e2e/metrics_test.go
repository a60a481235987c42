package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// scrape GETs an admin /metrics and parses it with Prometheus' own text
// parser; a scrape Prometheus could not read fails the test.
func scrape(t *testing.T, admin string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(adminGet(t, http.DefaultClient, "http://"+admin+"/metrics")))
	if err != nil {
		t.Fatalf("%s /metrics does not parse: %v", admin, err)
	}
	return fams
}

// sample returns the value of name's series whose labels include want (a
// histogram's sample count), summed over matching series; 0 if none.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
	for _, m := range fams[name].GetMetric() {
		if !hasLabels(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
			n++
		}
	}
	return n == len(want)
}

// TestSidecarMetricsCountTraffic scrapes a client sidecar's /metrics the
// way Prometheus does, before and after traffic: the series the README
// documents move by what was sent, with the same names and labels, next to
// the Go runtime and process metrics; gossip's series also appear on the
// control plane's /metrics.
func TestSidecarMetricsCountTraffic(t *testing.T) {
	t.Parallel()
	m := harness.StartMesh(t, 2, harness.MeshOptions{})
	admin := m.Client.Admin
	web := map[string]string{"cluster": "web", "code": "200"}
	before := scrape(t, admin)

	const n = 300
	r := harness.RunLoad(t, harness.LoadOptions{URL: m.URL(), Requests: n, Concurrency: 4})
	if r.Failures() != 0 {
		t.Fatalf("load: %s", r)
	}
	rejectMalformed(t, m.URL())

	// The proxy counts a request once its response is written, so the last
	// ones may land just after the client saw them.
	var after map[string]*dto.MetricFamily
	harness.Eventually(t, harness.DefaultTimeout, "requests_total to count the load", func() bool {
		after = scrape(t, admin)
		return sample(after, "shoal_sidecar_requests_total", web)-sample(before, "shoal_sidecar_requests_total", web) >= n
	})
	for _, c := range []struct {
		name     string
		labels   map[string]string
		min, max float64 // how far the series moved
	}{
		{"shoal_sidecar_requests_total", web, n, n},
		{"shoal_sidecar_request_duration_seconds", map[string]string{"cluster": "web"}, n, n},
		// Retries may add attempts; round robin spreads them.
		{"shoal_sidecar_upstream_requests_total", map[string]string{"cluster": "web"}, n, 2 * n},
		{"shoal_sidecar_upstream_requests_total", map[string]string{"cluster": "web", "endpoint": m.Addr(0)}, 1, 2 * n},
		{"shoal_sidecar_upstream_requests_total", map[string]string{"cluster": "web", "endpoint": m.Addr(1)}, 1, 2 * n},
		{"shoal_sidecar_rejected_requests_total", map[string]string{"code": "400"}, 1, 1},
	} {
		if d := sample(after, c.name, c.labels) - sample(before, c.name, c.labels); d < c.min || d > c.max {
			t.Errorf("%s%v moved by %v, want %v to %v", c.name, c.labels, d, c.min, c.max)
		}
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"shoal_xdsclient_connected", nil},
		{"shoal_xdsclient_responses_total", map[string]string{"result": "ack"}},
		{"shoal_xdsclient_snapshots_delivered_total", nil},
		{"shoal_gossip_members", map[string]string{"state": "alive"}},
		{"go_goroutines", nil},
		{"go_memstats_alloc_bytes", nil},
		{"go_memstats_heap_inuse_bytes", nil},
		{"process_resident_memory_bytes", nil},
		{"process_start_time_seconds", nil},
		{"process_open_fds", nil},
	} {
		if v := sample(after, c.name, c.labels); v <= 0 {
			t.Errorf("sidecar %s%v = %v, want > 0", c.name, c.labels, v)
		}
	}
	if after["process_cpu_seconds_total"] == nil || after["go_gc_duration_seconds"].GetType() != dto.MetricType_SUMMARY {
		t.Errorf("process_cpu_seconds_total or the go_gc_duration_seconds summary missing")
	}

	cp := scrape(t, m.CP.Admin)
	// The control plane and the four sidecars.
	harness.Eventually(t, harness.DefaultTimeout, "control plane's shoal_gossip_members to see the mesh", func() bool {
		cp = scrape(t, m.CP.Admin)
		return sample(cp, "shoal_gossip_members", map[string]string{"state": "alive"}) >= 4
	})
	if cp["go_goroutines"] == nil || cp["process_resident_memory_bytes"] == nil {
		t.Errorf("control plane lost its Go or process metrics")
	}
}

// rejectMalformed sends a request with a header field without a colon,
// which the sidecar refuses with 400 before routing.
func rejectMalformed(t *testing.T, url string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", url[len("http://"):], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: web\r\nNo colon here\r\n\r\n")
	status, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || len(status) < 12 || status[9:12] != "400" {
		t.Fatalf("malformed request: status line %q, %v; want 400", status, err)
	}
}
