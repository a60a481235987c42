package proxy

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// FuzzParseRequest feeds arbitrary bytes through head reading, request
// parsing and body decoding: nothing may panic, and a parsed request's
// framing must be unambiguous.
func FuzzParseRequest(f *testing.F) {
	for _, tc := range smugglingCases {
		f.Add([]byte(tc.raw))
	}
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufReader{rd: bytes.NewReader(data), buf: make([]byte, 64)}
		var req request
		discard := bufio.NewWriter(io.Discard)
		for range 4 {
			head, err := br.head(1024, 4096, nil)
			if err != nil {
				return
			}
			if parseRequest(&req, head, 100) != nil {
				return
			}
			if req.chunked && req.contentLength >= 0 {
				t.Fatal("parsed a request with both Content-Length and chunked")
			}
			var berr error
			switch {
			case req.chunked:
				berr = copyChunked(discard, &br, true)
			case req.contentLength > 0:
				berr = copyN(discard, &br, req.contentLength)
			}
			if berr != nil {
				return
			}
		}
	})
}

// FuzzParseChunkLine checks the chunk-size parser against overflow.
func FuzzParseChunkLine(f *testing.F) {
	f.Add([]byte("1a;x=y\r\n"))
	f.Add([]byte("fffffffffffffff\r\n"))
	f.Fuzz(func(t *testing.T, line []byte) {
		if size, _, ok := parseChunkLine(line); ok && size < 0 {
			t.Fatalf("negative chunk size %d for %q", size, line)
		}
	})
}
