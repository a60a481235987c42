package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// Issue 17: a route's circuit breakers reach the client sidecar through
// the control plane and take effect. With max_requests_per_endpoint 1,
// three slow requests in flight go to three different instances, and a
// fourth, with every instance at its limit, is refused at once with 503
// "upstream overflow"; /clusters and /metrics show the limits, and the
// rule's stall_detection: off and slow start. A service with no route
// keeps the defaults.
func TestRouteCircuitBreakers(t *testing.T) {
	t.Parallel()
	// Answers slow enough that the requests are in flight together; the
	// test waits for that on /clusters, it does not time it.
	m := harness.StartMesh(t, 3, harness.MeshOptions{AppEnv: func(int) []string { return []string{"DELAY_MS=8000"} }})
	m.ApplyRoute(t, "name: web\nhosts: [web]\nrules:\n  - destinations: [{service: web}]\n"+
		"    circuit_breakers: {max_requests: 10, max_requests_per_endpoint: 1}\n"+
		"    slow_start: {window: 30s}\n"+
		"    stall_detection: off\n", nil)
	var cluster *harness.ClusterStatus
	harness.Eventually(t, harness.DefaultTimeout, "the route's own cluster with every instance", func() bool {
		cs, err := m.Client.Clusters()
		if err != nil {
			return false
		}
		for i := range cs {
			if strings.HasPrefix(cs[i].Name, "web/round_robin/cfg-") && len(cs[i].Endpoints) == 3 && m.Client.RoutesMention(cs[i].Name) {
				cluster = &cs[i]
				return true
			}
		}
		return false
	})
	m.WaitRoutable(t, m.Client, cluster.Name, m.All()...)
	if cluster.MaxRequests != 10 || cluster.MaxRequestsPerEndpoint != 1 || !cluster.StallDetection.Disabled ||
		cluster.SlowStart == nil || cluster.SlowStart.WindowNS != int64(30*time.Second) {
		t.Errorf("/clusters %s: max_requests %d, per endpoint %d, stall off %v, slow start %+v; want 10, 1, true, 30s",
			cluster.Name, cluster.MaxRequests, cluster.MaxRequestsPerEndpoint, cluster.StallDetection.Disabled, cluster.SlowStart)
	}
	if def := m.Client.Cluster("web"); def == nil || def.MaxRequests != 1024 || def.StallDetection.Disabled {
		t.Errorf("/clusters web (no route's settings) = %+v, want the defaults", def)
	}

	type answer struct {
		status   int
		instance string
		body     string
		err      error
	}
	send := func(out chan<- answer) {
		c := &http.Client{Timeout: time.Minute}
		res, err := c.Get(m.URL() + "/slow")
		if err != nil {
			out <- answer{err: err}
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		out <- answer{status: res.StatusCode, instance: res.Header.Get("X-Instance"), body: string(b)}
	}
	slow := make(chan answer, 3)
	for range 3 {
		go send(slow)
	}
	harness.Eventually(t, harness.DefaultTimeout, "one request in flight on each instance", func() bool {
		c := m.Client.Cluster(cluster.Name)
		if c == nil || len(c.Endpoints) != 3 {
			return false
		}
		for _, e := range c.Endpoints {
			if e.Attempts != 1 {
				return false
			}
		}
		return true
	})
	over := make(chan answer, 1)
	send(over)
	if a := <-over; a.status != 503 || !strings.Contains(a.body, "upstream overflow") {
		t.Errorf("a fourth request with every instance at its limit: %d %q %v, want 503 upstream overflow", a.status, a.body, a.err)
	}
	seen := map[string]bool{}
	for range 3 {
		a := <-slow
		if a.status != 200 {
			t.Errorf("a slow request: %d %q %v, want 200", a.status, a.body, a.err)
		}
		seen[a.instance] = true
	}
	if len(seen) != 3 {
		t.Errorf("three requests in flight went to %v, want three different instances (limit 1 per instance)", seen)
	}
	res, err := http.Get("http://" + m.Client.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	metrics := string(b)
	want := `shoal_sidecar_circuit_breaker_limit{cluster="` + cluster.Name + `",resource="requests_per_endpoint"} 1`
	if !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}
