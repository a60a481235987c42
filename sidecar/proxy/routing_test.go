package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

func TestRouting(t *testing.T) {
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	tbl, err := route.New(route.Config{
		Loads: p.Loads(),
		VirtualHosts: []route.VirtualHost{
			{Name: "orders", Domains: []string{"orders", "orders.svc"}, Routes: []route.Route{
				{Match: route.Match{PathPrefix: "/", Headers: []route.HeaderMatch{{Name: "x-canary", Exact: "1"}}}, Clusters: one("b")},
				{Match: route.Match{PathPrefix: "/admin"}, Clusters: one("c")},
				{Match: route.Match{PathPrefix: "/"}, Clusters: one("a")},
			}},
			{Name: "empty", Domains: []string{"empty"}, Routes: []route.Route{{Clusters: one("empty")}}},
			{Name: "ghost", Domains: []string{"ghost"}, Routes: []route.Route{{Clusters: one("ghost")}}},
			{Name: "api", Domains: []string{"api"}, Routes: []route.Route{{Match: route.Match{PathPrefix: "/api"}, Clusters: one("a")}}},
		},
		Clusters: []route.ClusterConfig{
			{Name: "a", Endpoints: endpoints(a)}, {Name: "b", Endpoints: endpoints(b)},
			{Name: "c", Endpoints: endpoints(c)}, {Name: "empty"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.SetTable(tbl)
	cl := client(t)
	tests := []struct {
		name     string
		host     string
		path     string
		hdr      []string
		wantCode int
		wantFrom string
		wantBody string // a phrase of a local reply
	}{
		{name: "routes by host and prefix", host: "orders", path: "/x", wantCode: 200, wantFrom: "a"},
		{name: "host with port", host: "orders.svc:8080", path: "/x", wantCode: 200, wantFrom: "a"},
		{name: "routes by path", host: "orders", path: "/admin/users", wantCode: 200, wantFrom: "c"},
		{name: "routes by header", host: "orders", path: "/admin", hdr: []string{"X-Canary", "1"}, wantCode: 200, wantFrom: "b"},
		{name: "unknown host is 404", host: "nope", path: "/", wantCode: 404, wantBody: `no service or route named "nope"`},
		{name: "known host without a matching rule is 404", host: "api", path: "/other", wantCode: 404, wantBody: "no route matches api/other"},
		{name: "cluster without endpoints is 503", host: "empty", path: "/", wantCode: 503, wantBody: "no healthy instance of service empty"},
		{name: "unknown cluster is 503", host: "ghost", path: "/", wantCode: 503},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, from, body := get(t, cl, addr, tc.host, tc.path, tc.hdr...)
			if code != tc.wantCode || from != tc.wantFrom || !strings.Contains(body, tc.wantBody) {
				t.Errorf("got %d from %q (%q), want %d from %q (%q)", code, from, body, tc.wantCode, tc.wantFrom, tc.wantBody)
			}
		})
	}
}

func TestForwardedHeaders(t *testing.T) {
	seen := make(chan http.Header, 4)
	be := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		seen <- h
		w.Header().Set("Connection", "X-Secret")
		w.Header().Set("X-Secret", "hop")
		w.Header().Set("Keep-Alive", "timeout=5")
	})
	tests := []struct {
		name    string
		mode    Mode
		hdr     []string
		wantXFF string
	}{
		{name: "outbound appends to X-Forwarded-For", mode: Mode{Kind: Outbound}, hdr: []string{"X-Forwarded-For", "10.1.1.1"}, wantXFF: "10.1.1.1, 127.0.0.1"},
		{name: "gateway replaces untrusted X-Forwarded-For", mode: Mode{Kind: Gateway}, hdr: []string{"X-Forwarded-For", "10.1.1.1"}, wantXFF: "127.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, addr := startProxy(t, Config{}, tc.mode)
			p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(be)}, route.Route{}))
			hdr := append([]string{"Connection", "X-Hop", "X-Hop", "1", "Proxy-Connection", "keep-alive", "Te", "trailers, deflate", "X-Keep", "yes"}, tc.hdr...)
			req, _ := http.NewRequest("GET", "http://"+addr+"/h", nil)
			req.Host = "svc.example"
			for i := 0; i < len(hdr); i += 2 {
				req.Header.Set(hdr[i], hdr[i+1])
			}
			res, err := client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			got := <-seen
			for k, want := range map[string]string{
				"X-Forwarded-For": tc.wantXFF, "X-Forwarded-Proto": "http", "X-Hop": "", "Proxy-Connection": "",
				"Te": "trailers", "X-Keep": "yes", "Host": "svc.example",
			} {
				if v := got.Get(k); v != want {
					t.Errorf("upstream %s = %q, want %q", k, v, want)
				}
			}
			if id := got.Get("X-Request-Id"); len(id) != 36 {
				t.Errorf("X-Request-Id = %q, want a UUID", id)
			}
			if res.Header.Get("X-Secret") != "" || res.Header.Get("Keep-Alive") != "" {
				t.Errorf("hop-by-hop response headers forwarded: %v", res.Header)
			}
		})
	}
}

func TestBodies(t *testing.T) {
	be := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Sum")
		if r.URL.Query().Get("stream") != "" {
			w.(http.Flusher).Flush() // unknown length: chunked
		}
		w.Write([]byte(strings.ToUpper(string(body))))
		w.Header().Set("X-Sum", "42")
	})
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(be)}, route.Route{}))
	cl := client(t)
	big := strings.Repeat("abcdefgh", 100<<10)
	tests := []struct {
		name    string
		path    string
		body    io.Reader
		length  int64
		want    string
		trailer string
	}{
		{name: "content-length body", path: "/", body: strings.NewReader("hello"), length: 5, want: "HELLO"},
		{name: "chunked request body", path: "/", body: io.MultiReader(strings.NewReader("hel"), strings.NewReader("lo")), length: -1, want: "HELLO"},
		{name: "large body streams", path: "/", body: strings.NewReader(big), length: int64(len(big)), want: strings.ToUpper(big)},
		{name: "chunked response with trailers", path: "/?stream=1", body: strings.NewReader("x"), length: 1, want: "X", trailer: "42"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", "http://"+addr+tc.path, tc.body)
			req.ContentLength = tc.length
			res, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			got, err := io.ReadAll(res.Body)
			if err != nil || string(got) != tc.want {
				t.Fatalf("body = %d bytes (%v), want %d bytes", len(got), err, len(tc.want))
			}
			if tc.trailer != "" && res.Trailer.Get("X-Sum") != tc.trailer {
				t.Errorf("trailer X-Sum = %q, want %q", res.Trailer.Get("X-Sum"), tc.trailer)
			}
		})
	}
}
