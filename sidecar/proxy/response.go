package proxy

import (
	"bufio"
	"bytes"
	"errors"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

var errBadResponse = errors.New("proxy: malformed upstream response")

// response is the parsed head of an upstream response; its slices point
// into the upstream connection's read buffer. Reused per client connection.
type response struct {
	code          int
	status        []byte // "200 OK"
	minor         int
	headers       []route.HeaderField
	contentLength int64 // -1: none
	chunked       bool
	closeConn     bool
	connTokens    [maxConnTokens][]byte
	nConnTokens   int

	// load is the backend's ORCA load report (endpoint-load-metrics),
	// valid when hasLoad is set; see lb.ParseORCA.
	load    lb.LoadReport
	hasLoad bool
	// stripLoad drops ORCA headers in writeHead: set by the caller where
	// the response leaves the mesh (issue 17).
	stripLoad bool
}

// parseResponse parses an upstream response head. Upstreams are trusted
// more than clients, but framing ambiguity is still refused.
func parseResponse(r *response, head []byte) error {
	*r = response{headers: r.headers[:0], contentLength: -1}
	line, rest, herr := nextLine(head)
	if herr != nil || len(line) < 12 || line[8] != ' ' {
		return errBadResponse
	}
	switch string(line[:8]) {
	case "HTTP/1.1":
		r.minor = 1
	case "HTTP/1.0":
		r.closeConn = true
	default:
		return errBadResponse
	}
	r.status = line[9:]
	for _, c := range r.status[:3] {
		if c < '0' || c > '9' {
			return errBadResponse
		}
		r.code = r.code*10 + int(c-'0')
	}
	if len(r.status) > 3 && r.status[3] != ' ' {
		return errBadResponse
	}
	for {
		line, rest, herr = nextLine(rest)
		if herr != nil {
			return errBadResponse
		}
		if len(line) == 0 {
			return nil
		}
		if err := r.addHeader(line); err != nil {
			return err
		}
	}
}

func (r *response) addHeader(line []byte) error {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
		return errBadResponse
	}
	name, value := line[:colon], trimOWS(line[colon+1:])
	if !isToken(name) || !validValue(value) {
		return errBadResponse
	}
	r.headers = append(r.headers, route.HeaderField{Name: name, Value: value})
	switch {
	case equalFold(name, "content-length"):
		n, ok := parseDecimal(value)
		if !ok || (r.contentLength >= 0 && r.contentLength != n) {
			return errBadResponse
		}
		r.contentLength = n
	case equalFold(name, "transfer-encoding"):
		// The last coding decides (RFC 9112 6.3): chunked, or read until close.
		r.chunked = lastToken(value, "chunked")
		if !r.chunked {
			r.closeConn = true
		}
	case equalFold(name, "connection"):
		r.addConnTokens(value)
	case equalFold(name, lb.ORCAHeader):
		r.load, r.hasLoad = lb.ParseORCA(value)
	}
	return nil
}

func (r *response) addConnTokens(v []byte) {
	for len(v) > 0 {
		var tok []byte
		tok, v, _ = bytes.Cut(v, []byte(","))
		switch tok = trimOWS(tok); {
		case equalFold(tok, "close"):
			r.closeConn = true
		case equalFold(tok, "keep-alive") && r.minor == 0:
			r.closeConn = false
		case len(tok) > 0 && r.nConnTokens < maxConnTokens:
			r.connTokens[r.nConnTokens] = tok
			r.nConnTokens++
		}
	}
}

// noBody reports whether the response has no body regardless of framing
// headers (RFC 9112 6.3 rules 1-2).
func (r *response) noBody(head bool) bool {
	return head || r.code/100 == 1 || r.code == 204 || r.code == 304
}

// framing is how a response body is delimited.
type framing uint8

const (
	frameNone framing = iota
	frameLength
	frameChunked
	frameClose
)

func (r *response) framing(head bool) framing {
	switch {
	case r.noBody(head):
		return frameNone
	case r.chunked:
		return frameChunked
	case r.contentLength >= 0:
		return frameLength
	}
	return frameClose
}

// writeHead writes the status line and forwarded response headers to w,
// with framing for the client: clientChunked selects chunked coding,
// closeClient adds "Connection: close".
func (r *response) writeHead(w *bufio.Writer, fr framing, clientChunked, closeClient, keepAlive10 bool) {
	w.WriteString("HTTP/1.1 ")
	w.Write(r.status)
	w.WriteString("\r\n")
	toks := r.connTokens[:r.nConnTokens]
	for i := range r.headers {
		f := &r.headers[i]
		if c := classify(f.Name); c == hdrHop || c == hdrFraming {
			continue
		}
		if len(toks) > 0 && namedIn(f.Name, toks) {
			continue
		}
		if r.stripLoad && isORCAHeader(f.Name) {
			continue
		}
		w.Write(f.Name)
		w.WriteString(": ")
		w.Write(f.Value)
		w.WriteString("\r\n")
	}
	switch {
	case clientChunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	case fr == frameLength || (fr == frameNone && r.contentLength >= 0):
		w.WriteString("Content-Length: ")
		writeInt(w, r.contentLength)
		w.WriteString("\r\n")
	}
	switch {
	case closeClient:
		w.WriteString("Connection: close\r\n")
	case keepAlive10:
		w.WriteString("Connection: keep-alive\r\n")
	}
	w.WriteString("\r\n")
}

func parseDecimal(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// lastToken reports whether the last element of a list is tok.
func lastToken(v []byte, tok string) bool {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return equalFold(trimOWS(v), tok)
}

// isORCAHeader reports whether name is one of the ORCA load report headers
// (endpoint-load-metrics, and its -bin and -json forms, which Envoy also
// reads): a backend's load is for the mesh's balancers, not for clients.
func isORCAHeader(name []byte) bool {
	const n = len(lb.ORCAHeader)
	if len(name) < n || !equalFold(name[:n], lb.ORCAHeader) {
		return false
	}
	rest := name[n:]
	return len(rest) == 0 || equalFold(rest, "-bin") || equalFold(rest, "-json")
}
