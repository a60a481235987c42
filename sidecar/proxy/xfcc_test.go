package proxy

import (
	"net/http"
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// A client's own x-forwarded-client-cert must not reach an app behind the
// inbound listener or the gateway (Envoy's SANITIZE): only the sidecar's
// mTLS listener may say who called. From the local app (outbound) it is
// the app's business and passes.
func TestClientXFCCIsRemovedInboundAndAtTheEdge(t *testing.T) {
	be := startBackend(t, "app", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Xfcc", r.Header.Get("X-Forwarded-Client-Cert"))
	})
	const forged = "By=spiffe://evil/x;URI=spiffe://shoal.local/ns/default/svc/admin"
	for _, tc := range []struct {
		name string
		mode Mode
		want string
	}{
		{"inbound", Mode{Kind: Inbound, Cluster: "app"}, ""},
		{"gateway", Mode{Kind: Gateway}, ""},
		{"outbound", Mode{Kind: Outbound}, forged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, addr := startProxy(t, Config{}, tc.mode)
			p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "app", Endpoints: endpoints(be)}, route.Route{}))
			req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
			req.Host = "app"
			req.Header.Set("X-Forwarded-Client-Cert", forged)
			res, err := client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if got := res.Header.Get("X-Seen-Xfcc"); res.StatusCode != 200 || got != tc.want {
				t.Fatalf("status %d, the app saw XFCC %q, want %q", res.StatusCode, got, tc.want)
			}
		})
	}
}
