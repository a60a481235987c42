package proxy

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/authz"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

const (
	webID     = "spiffe://shoal.local/ns/default/svc/web"
	billingID = "spiffe://shoal.local/ns/default/svc/billing"
)

// peerConn is an inbound connection that authenticated its peer as id, as
// the sidecar's mTLS listener's connections do.
type peerConn struct {
	net.Conn
	id string
}

func (c peerConn) XFCC() []byte {
	return []byte("By=spiffe://shoal.local/ns/default/svc/orders;URI=" + c.id)
}
func (c peerConn) PeerID() string { return c.id }

// peerListener hands out connections authenticated as id ("" : plain).
type peerListener struct {
	net.Listener
	id string
}

func (l peerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil || l.id == "" {
		return c, err
	}
	return peerConn{c, l.id}, nil
}

// startInbound serves an inbound listener in front of app whose table lets
// only web in, and returns the address of each caller's listener.
func startInbound(t *testing.T, app *backend, proto route.Protocol) map[string]string {
	t.Helper()
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	onlyWeb := &authz.Policy{Service: "orders", Rules: []authz.Rule{{
		Permissions: []authz.Matcher{authz.Any},
		Principals:  []authz.Matcher{authz.Authenticated(&authz.String{Kind: "exact", Exact: webID})},
	}}}
	tbl, err := route.New(route.Config{Loads: p.Loads(), Authz: onlyWeb, Clusters: []route.ClusterConfig{
		{Name: "local_app", Protocol: proto, Endpoints: endpoints(app)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	p.SetTable(tbl)
	addrs := map[string]string{}
	for _, id := range []string{webID, billingID, ""} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[id] = serveOn(t, p, peerListener{l, id}, Mode{Kind: Inbound, Cluster: "local_app"})
	}
	return addrs
}

func TestInboundAuthorization(t *testing.T) {
	for _, tc := range []struct {
		name   string
		proto  route.Protocol
		client func(*testing.T) *http.Client
	}{
		{"HTTP/1.1 to an HTTP/1.1 app", route.HTTP1, client},
		{"HTTP/2 to an HTTP/1.1 app", route.HTTP1, h2cClient},
		{"HTTP/2 to an HTTP/2 app", route.HTTP2, h2cClient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := startBackendProto(t, "orders", nil, tc.proto == route.HTTP2)
			addrs := startInbound(t, app, tc.proto)
			c := tc.client(t)
			for _, caller := range []string{webID, billingID, ""} {
				resp, err := c.Get("http://" + addrs[caller] + "/orders")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case caller == webID && resp.StatusCode != 200:
					t.Errorf("web: %d %q, want 200", resp.StatusCode, body)
				case caller != webID && (resp.StatusCode != 403 || !strings.Contains(string(body), "access denied")):
					t.Errorf("caller %q: %d %q, want 403 with the reason", caller, resp.StatusCode, body)
				}
			}
			if n := app.count.Load(); n != 1 {
				t.Errorf("the app saw %d requests, want only web's", n)
			}
		})
	}
}

// A denied gRPC call gets a trailers-only PERMISSION_DENIED, on both HTTP/2
// paths (an HTTP/2 app: the frame forwarder; an HTTP/1.1 app: net/http).
func TestInboundAuthorizationGRPC(t *testing.T) {
	for _, proto := range []route.Protocol{route.HTTP2, route.HTTP1} {
		app := startBackendProto(t, "orders", nil, proto == route.HTTP2)
		addrs := startInbound(t, app, proto)
		req, _ := http.NewRequest("POST", "http://"+addrs[billingID]+"/orders.Orders/Get", strings.NewReader("\x00\x00\x00\x00\x00"))
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("TE", "trailers")
		resp, err := h2cClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Grpc-Status") != "7" || len(body) != 0 ||
			!strings.Contains(resp.Header.Get("Grpc-Message"), "billing") {
			t.Errorf("app protocol %v: %d headers %v body %q, want trailers-only grpc-status 7", proto, resp.StatusCode, resp.Header, body)
		}
		if n := app.count.Load(); n != 0 {
			t.Errorf("app protocol %v: the app saw %d requests", proto, n)
		}
	}
}
