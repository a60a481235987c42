package proxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// smugglingCases is the raw-socket corpus: each request is either rejected
// (code != 200: the proxy answers and closes, nothing reaches the
// backend, or for body errors at most the one incomplete request) or
// passes as exactly one request. Passing requests carry Connection: close
// so that trailing bytes are never parsed as a second request.
var smugglingCases = []struct {
	name     string
	raw      string
	wantCode int
}{
	{"CL.TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", 400},
	{"TE.CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", 400},
	{"duplicate Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400},
	{"conflicting Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
	{"Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello", 400},
	{"signed Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400},
	{"negative Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
	{"hex Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello", 400},
	{"overflowing Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
	{"double chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400},
	{"two TE fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	{"gzip then chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400},
	{"chunked not final", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400},
	{"identity TE", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 400},
	{"TE with vertical tab", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", 400},
	{"xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400},
	{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n", 400},
	{"obs-fold TE", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400},
	{"bare LF in header", "GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", 400},
	{"bare LF request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400},
	{"bare LF head end", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400},
	{"bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400},
	{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", 400},
	{"space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
	{"tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400},
	{"invalid header name", "GET / HTTP/1.1\r\nHost: a\r\nX[A]: b\r\n\r\n", 400},
	{"empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400},
	{"missing Host", "GET / HTTP/1.1\r\n\r\n", 400},
	{"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
	{"HTTP/0.9", "GET /\r\n\r\n", 400},
	{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505},
	{"HTTP/2 without preface", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
	{"double space in request line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"tab in request line", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"invalid method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405},
	{"bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400},
	{"bare LF in chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400},
	{"space before chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n", 400},
	{"chunk size overflow", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nhello\r\n0\r\n\r\n", 400},
	{"chunk data overrun", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", 400},
	{"huge chunk extension", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=" + strings.Repeat("x", 5000) + "\r\nhello\r\n0\r\n\r\n", 400},
	{"chunk extension with CR", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a\rb\r\nhello\r\n0\r\n\r\n", 400},
	{"bare LF after chunk data", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", 400},
	{"obs-fold in trailer", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n", 400},
	{"too many headers", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-A: b\r\n", 100) + "\r\n", 431},
	{"header section too large", "GET / HTTP/1.1\r\nHost: a\r\nX-A: " + strings.Repeat("b", 61<<10) + "\r\n\r\n", 431},
	{"request line too long", "GET /" + strings.Repeat("a", 9<<10) + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
	{"valid chunked with extension and trailer", "POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", 200},
	{"valid Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhelloGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", 200},
	{"leading CRLF", "\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 200},
	{"absolute form", "GET http://a/x HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n", 200},
	{"absolute form without Host", "GET http://a/x HTTP/1.1\r\nConnection: close\r\n\r\n", 400},
	{"Content_Length is dropped, not a length", "POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent_Length: 36\r\n\r\n" + smuggled, 200},
	{"Transfer_Encoding is dropped", "POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 200},
	{"h2c upgrade is ignored", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n", 200},
	{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", 200},
}

func TestSmugglingCorpus(t *testing.T) {
	be := startRawBackend(t)
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: []route.Endpoint{{Address: be.l.Addr().String(), Healthy: true}}}, route.Route{}))
	for _, tc := range smugglingCases {
		t.Run(tc.name, func(t *testing.T) {
			before := be.count.Load()
			code, closed := rawExchange(t, addr, tc.raw)
			if code != tc.wantCode {
				t.Errorf("status = %d, want %d", code, tc.wantCode)
			}
			if !closed {
				t.Error("connection not closed")
			}
			got := be.count.Load() - before
			switch {
			case tc.wantCode == 200 && got != 1:
				t.Errorf("backend saw %d requests, want exactly 1", got)
			case tc.wantCode != 200 && got > 1:
				t.Errorf("backend saw %d requests for a rejected request", got)
			case tc.wantCode != 200 && got == 1 && !strings.Contains(tc.name, "chunk"):
				t.Errorf("backend saw a request that should have been rejected in the head")
			}
		})
	}
	t.Run("proxy keeps serving", func(t *testing.T) {
		if code, _ := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); code != 200 {
			t.Errorf("status = %d after the corpus, want 200", code)
		}
	})
}

// rawExchange writes raw, reads the first response's status and reports
// whether the proxy then closed the connection.
func rawExchange(t *testing.T, addr, raw string) (code int, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(defaultTestTimeout))
	go io.WriteString(c, raw) // large heads may not be read in full
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	if len(line) < 12 {
		t.Fatalf("bad status line %q", line)
	}
	for _, ch := range line[9:12] {
		code = code*10 + int(ch-'0')
	}
	_, err = io.Copy(io.Discard, br)
	return code, err == nil
}
