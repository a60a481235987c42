package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/accesslog"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// The access log line of a proxied request carries the request's own
// User-Agent, first X-Forwarded-For and X-Request-Id (or the generated
// one the upstream got), the body sizes and the endpoint.
func TestAccessLogLineFields(t *testing.T) {
	logger, logBuf := startAccessLog(t, accesslog.Text)
	p, addr := startProxy(t, Config{AccessLog: logger}, Mode{Kind: Outbound})
	gotID := make(chan string, 2)
	be := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		gotID <- r.Header.Get("X-Request-Id")
		io.WriteString(w, "hello")
	})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "svc", Endpoints: endpoints(be)}, route.Route{}))

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, req := range []string{
		"POST /p?x=1 HTTP/1.1\r\nHost: svc\r\nUser-Agent: ua/1\r\nX-Forwarded-For: 1.2.3.4\r\n" +
			"x-forwarded-for: 5.6.7.8\r\nX-Request-Id: rid-7\r\nuser-agent: second\r\nContent-Length: 3\r\n\r\nabc",
		"GET /q HTTP/1.1\r\nHost: svc\r\n\r\n",
	} {
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%q: %d", req, resp.StatusCode)
		}
	}
	if id := <-gotID; id != "rid-7" {
		t.Errorf("upstream got X-Request-Id %q, want the client's", id)
	}
	generated := <-gotID
	ep := regexp.QuoteMeta(be.addr())
	want := []*regexp.Regexp{
		regexp.MustCompile(`^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] "POST /p\?x=1 HTTP/1\.1" 200 - 3 5 \d+ - "1\.2\.3\.4" "ua/1" "rid-7" "svc" "` + ep + `"$`),
		regexp.MustCompile(`^\[\S+\] "GET /q HTTP/1\.1" 200 - 0 5 \d+ - "-" "-" "` + regexp.QuoteMeta(generated) + `" "svc" "` + ep + `"$`),
	}
	var lines []string
	eventually(t, "two access log lines", func() bool {
		lines = strings.Split(strings.TrimSuffix(logBuf.String(), "\n"), "\n")
		return len(lines) == 2
	})
	if len(generated) != 36 {
		t.Errorf("generated X-Request-Id %q: want a UUID", generated)
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %d:\n%s\ndoes not match %s", i+1, lines[i], re)
		}
	}
}

// HTTP/2 streams get a line each, frame to frame (gRPC: with its status)
// and through net/http (an h2c client to an HTTP/1.1 cluster), with the
// response flags of a missing route and of an endpoint that refuses
// connections.
func TestAccessLogHTTP2Streams(t *testing.T) {
	logger, logBuf := startAccessLog(t, accesslog.JSON)
	p, addr := startProxy(t, Config{AccessLog: logger}, Mode{Kind: Outbound})
	be := startH2CBackend(t, "grpc", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)        // as a gRPC server reads the request first
		if r.URL.Path == "/pkg.Svc/Down" { // trailers-only
			w.Header().Set("Grpc-Status", "14")
			w.WriteHeader(200)
			return
		}
		w.Header().Set("Trailer", "Grpc-Status")
		io.WriteString(w, "hello")
		w.Header().Set("Grpc-Status", "0")
	})
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	tbl, err := route.New(route.Config{
		VirtualHosts: []route.VirtualHost{
			{Name: "grpc", Domains: []string{"grpc"}, Routes: []route.Route{{Match: route.Match{PathPrefix: "/"}, Clusters: one("grpc")}}},
			{Name: "web", Domains: []string{"web"}, Routes: []route.Route{{Match: route.Match{PathPrefix: "/"}, Clusters: one("web")}}},
			{Name: "dead", Domains: []string{"dead"}, Routes: []route.Route{{Match: route.Match{PathPrefix: "/"}, Clusters: one("dead")}}},
		},
		Clusters: []route.ClusterConfig{
			{Name: "grpc", Protocol: route.HTTP2, Endpoints: endpoints(be)},
			{Name: "web", Endpoints: endpoints(be)},
			{Name: "dead", Protocol: route.HTTP2, Endpoints: []route.Endpoint{{Address: deadAddr, Healthy: true}}},
		},
		Loads: p.Loads(),
	})
	if err != nil {
		t.Fatal(err)
	}
	p.SetTable(tbl)
	c := h2cClient(t)
	for _, s := range []struct {
		host, path string
		want       int
	}{{"grpc", "/pkg.Svc/Get", 200}, {"grpc", "/pkg.Svc/Down", 200}, {"web", "/page?x=1", 200}, {"nosuch", "/", 404}, {"dead", "/pkg.Svc/Get", 502}} {
		req, _ := http.NewRequest("POST", "http://"+addr+s.path, strings.NewReader("abc"))
		req.Host = s.host
		req.Header.Set("User-Agent", "h2-"+s.host)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != s.want {
			t.Fatalf("%s%s: %d, want %d", s.host, s.path, resp.StatusCode, s.want)
		}
	}
	// An HTTP/1.1 client to the h2c cluster (through net/http).
	req, _ := http.NewRequest("GET", "http://"+addr+"/pkg.Svc/Get", nil)
	req.Host = "grpc"
	req.Header.Set("User-Agent", "h1-grpc")
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	var lines []map[string]any
	eventually(t, "six access log lines", func() bool {
		lines = nil
		for _, ln := range strings.Split(strings.TrimSpace(logBuf.String()), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(ln), &m) == nil {
				lines = append(lines, m)
			}
		}
		return len(lines) == 6
	})
	byUA := map[string]map[string]any{}
	for _, m := range lines {
		byUA[fmt.Sprint(m["user_agent"])+fmt.Sprint(m["path"])] = m
	}
	for key, want := range map[string]map[string]any{
		"h2-grpc/pkg.Svc/Get":  {"protocol": "HTTP/2", "response_code": 200.0, "response_flags": "-", "grpc_status": "0", "upstream_host": be.addr(), "bytes_received": 3.0, "bytes_sent": 5.0, "authority": "grpc"},
		"h2-grpc/pkg.Svc/Down": {"protocol": "HTTP/2", "response_code": 200.0, "grpc_status": "14", "upstream_host": be.addr()},
		"h2-web/page?x=1":      {"protocol": "HTTP/2", "response_code": 200.0, "response_flags": "-", "upstream_host": be.addr(), "upstream_cluster": "web", "bytes_received": 3.0},
		"h2-nosuch/":           {"protocol": "HTTP/2", "response_code": 404.0, "response_flags": "NR", "upstream_host": nil},
		"h2-dead/pkg.Svc/Get":  {"protocol": "HTTP/2", "response_code": 502.0, "response_flags": "UF,URX", "upstream_host": deadAddr},
		"h1-grpc/pkg.Svc/Get":  {"protocol": "HTTP/1.1", "response_code": 200.0, "response_flags": "-", "upstream_host": be.addr(), "upstream_cluster": "grpc"},
	} {
		m, ok := byUA[key]
		if !ok {
			t.Errorf("no line for %s in %v", key, lines)
			continue
		}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s: %s = %#v, want %#v (line %v)", key, k, m[k], v, m)
			}
		}
		if id, _ := m["request_id"].(string); len(id) != 36 && key != "h2-nosuch/" { // not forwarded: none (as HTTP/1.1)
			t.Errorf("%s: request_id %q, want the generated UUID", key, id)
		}
	}
}

// Response flags describe the response the client got, as Envoy's do: a
// GET whose first attempt hit an instance that closes every connection
// unanswered, and which another instance then answered, logs "200 -", not
// the failed attempt's UC or UF (Envoy sets those only on the local reply
// it sends). On every protocol path.
func TestAccessLogFlagsDescribeTheResponse(t *testing.T) {
	for _, tc := range protocolPaths {
		t.Run(tc.name, func(t *testing.T) {
			logger, logBuf := startAccessLog(t, accesslog.Text)
			p, addr := startProxy(t, Config{AccessLog: logger}, Mode{Kind: Outbound})
			closer, closed := startCloser(t)
			live := startBackendProto(t, "live", nil, tc.proto == route.HTTP2)
			eps := append([]route.Endpoint{{Address: closer, Healthy: true}}, endpoints(live)...)
			p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "svc", Protocol: tc.proto, Endpoints: eps,
				Outlier: route.OutlierDetection{Disabled: true}}, route.Route{}))
			c := tc.c(t)
			const n = 6
			for range n {
				if code, from, body := get(t, c, addr, "svc", "/"); code != 200 || from != "live" {
					t.Fatalf("GET: %d from %q (%q), want 200 from the live instance", code, from, body)
				}
			}
			if closed.Load() == 0 {
				t.Fatal("no attempt reached the instance that closes connections: the test proves nothing")
			}
			var lines []string
			eventually(t, fmt.Sprintf("%d access log lines", n), func() bool {
				lines = strings.Split(strings.TrimSpace(logBuf.String()), "\n")
				return len(lines) >= n
			})
			for _, l := range lines {
				if !strings.Contains(l, `" 200 - `) {
					t.Errorf("access log line %q, want status 200 with no flags", l)
				}
			}
		})
	}
}

// startCloser listens on loopback and closes every connection it accepts
// without reading or answering; it counts them.
func startCloser(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String(), &n
}
