package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/accesslog"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// The access log line of a proxied request carries the request's own
// User-Agent, first X-Forwarded-For and X-Request-Id (or the generated
// one the upstream got), the body sizes and the endpoint.
func TestAccessLogLineFields(t *testing.T) {
	var logBuf lockedBuffer
	logger := accesslog.New(accesslog.Config{W: &logBuf, FlushInterval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	logged := make(chan struct{})
	go func() { defer close(logged); logger.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-logged })
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
