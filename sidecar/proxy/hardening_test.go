package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// Header names with an underscore are dropped (nginx's default,
// underscores_in_headers off): the app never sees them, the request is
// served.
func TestUnderscoreHeadersAreDropped(t *testing.T) {
	be := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%q %q", r.Header.Get("X_User"), r.Header.Get("X-Other"))
	})
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(be)}, route.Route{}))
	c, br := rawClientConn(t, addr)
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: a\r\nX_User: admin\r\nX-Other: kept\r\n\r\n")
	if got, want := readBody(t, br), `"" "kept"`; got != want {
		t.Errorf("backend saw %s, want %s", got, want)
	}
}

// Incoming X-Forwarded-* are trusted from the local app, and on inbound
// listeners only from mesh peers (loopback or an endpoint of the table),
// never from an arbitrary client; at the gateway only with trusted hops.
func TestForwardedHeadersTrust(t *testing.T) {
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tbl, err := route.New(route.Config{Clusters: []route.ClusterConfig{
		{Name: "orders", Endpoints: []route.Endpoint{{Address: "10.0.0.7:15006", Healthy: true}, {Address: "orders.internal:80", Healthy: true}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	p.SetTable(tbl)
	b := p.bound.Load()
	peer, loop, stranger := netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("203.0.113.9")
	for _, tc := range []struct {
		name string
		mode Mode
		peer netip.Addr
		want bool
	}{
		{"outbound: the local app", Mode{Kind: Outbound}, loop, true},
		{"fixed: the local app", Mode{Kind: Fixed}, loop, true},
		{"inbound from loopback", Mode{Kind: Inbound}, loop, true},
		{"inbound from a mesh endpoint", Mode{Kind: Inbound}, peer, true},
		{"inbound from an arbitrary client", Mode{Kind: Inbound}, stranger, false},
		{"inbound from a peer of unknown address", Mode{Kind: Inbound}, netip.Addr{}, false},
		{"inbound behind trusted hops", Mode{Kind: Inbound, XFFTrustedHops: 1}, stranger, true},
		{"gateway", Mode{Kind: Gateway}, loop, false},
		{"gateway behind trusted hops", Mode{Kind: Gateway, XFFTrustedHops: 1}, stranger, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.mode.trustsForwarded(b, tc.peer); got != tc.want {
				t.Errorf("trustsForwarded = %v, want %v", got, tc.want)
			}
		})
	}
}
