package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseRequestAgainstNetHTTP is a differential fuzzer: a request head
// the proxy accepts must be one net/http's server reader accepts too, with
// the same method, target, Host and body framing (Content-Length or
// chunked). The proxy may reject more (it is stricter, RFC 9112); a head
// both accept but frame differently is how request smuggling starts.
func FuzzParseRequestAgainstNetHTTP(f *testing.F) {
	for _, tc := range smugglingCases {
		f.Add([]byte(tc.raw))
	}
	f.Add([]byte("GET /a?b=c HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add([]byte("POST /x HTTP/1.1\r\nHost: a:80\r\nContent-Length: 3\r\n\r\nabc"))
	f.Add([]byte("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	f.Add([]byte("GET http://b/c HTTP/1.0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufReader{rd: bytes.NewReader(data), buf: make([]byte, 64)}
		head, err := br.head(1024, 4096, nil)
		if err != nil {
			return
		}
		var req request
		if parseRequest(&req, head, 100) != nil {
			return
		}
		std, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("the proxy accepts a head net/http rejects (%v):\n%q", err, head)
		}
		// The proxy turns an absolute-form target into origin-form (its Host
		// from the URI, compared below); net/http keeps the URI.
		absolute := std.URL.IsAbs()
		if std.Method != string(req.method) || (std.RequestURI != string(req.target) && !absolute) {
			t.Fatalf("request line: proxy %q %q, net/http %q %q", req.method, req.target, std.Method, std.RequestURI)
		}
		if !strings.EqualFold(std.Host, string(req.host)) {
			t.Fatalf("host: proxy %q, net/http %q\n%q", req.host, std.Host, head)
		}
		stdChunked := len(std.TransferEncoding) > 0 && std.TransferEncoding[0] == "chunked"
		if stdChunked != req.chunked {
			t.Fatalf("chunked: proxy %v, net/http %v\n%q", req.chunked, stdChunked, head)
		}
		if !req.chunked {
			want := max(req.contentLength, 0)
			if std.ContentLength != want {
				t.Fatalf("content length: proxy %d, net/http %s\n%q", req.contentLength, strconv.FormatInt(std.ContentLength, 10), head)
			}
		}
	})
}
