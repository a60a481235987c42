package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// A GET reset before any response (an instance killed mid-request) goes to
// another host without a route retry policy; a POST does not.
func TestIdempotentResetRetriedWithoutPolicy(t *testing.T) {
	bad, badIDs := resetBackend(t, "bad")
	good := startBackend(t, "good", nil)
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(bad, good), Outlier: route.OutlierDetection{Disabled: true}}, route.Route{}))
	cl := client(t)
	for range 10 {
		if code, from, _ := get(t, cl, addr, "a", "/"); code != 200 || from != "good" {
			t.Fatalf("GET: got %d from %q, want 200 from good", code, from)
		}
	}
	if len(badIDs()) == 0 {
		t.Error("the resetting backend was never tried")
	}
	noDuplicates(t, badIDs())

	got502 := false
	for range 10 {
		res, err := cl.Post("http://"+addr+"/", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusBadGateway {
			got502 = true
		}
	}
	if !got502 {
		t.Error("a POST reset by the upstream was retried without a policy; want 502")
	}
}
