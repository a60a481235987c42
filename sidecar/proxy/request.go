package proxy

import (
	"bytes"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// maxConnTokens bounds the Connection header tokens remembered per request.
const maxConnTokens = 8

// httpError is a request the proxy rejects itself: status and a short body.
// The connection is closed after the reply.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

// Rejections. They are values so that rejecting does not allocate.
var (
	errBadRequestLine = &httpError{400, "malformed request line"}
	errBadVersion     = &httpError{505, "HTTP version not supported"}
	// errNotHTTP is a request line without an HTTP version, such as an
	// invalid HTTP/2 connection preface: such a peer cannot read an
	// HTTP/1 reply, so the connection closes without one (RFC 9113 3.4).
	errNotHTTP         = &httpError{400, "not an HTTP/1 request line"}
	errBadHeader       = &httpError{400, "malformed header field"}
	errObsFold         = &httpError{400, "obsolete line folding is not allowed"}
	errBareLF          = &httpError{400, "bare LF is not allowed"}
	errTooManyHeaders  = &httpError{431, "too many header fields"}
	errTooLargeHeaders = &httpError{431, "header section too large"}
	errURITooLong      = &httpError{414, "request line too long"}
	errBadHost         = &httpError{400, "missing or duplicate Host header"}
	errBadCL           = &httpError{400, "invalid or duplicate Content-Length"}
	errBadTE           = &httpError{400, "unsupported Transfer-Encoding"}
	errCLAndTE         = &httpError{400, "both Content-Length and Transfer-Encoding"}
	errConnect         = &httpError{405, "CONNECT is not supported"}
	errBadChunk        = &httpError{400, "malformed chunked body"}
	errBodyTimeout     = &httpError{408, "request body timeout"}
)

// request is the parsed head of one client request. Its slices point into
// the connection's read buffer and are valid until the body is read. It is
// reused for every request of a connection.
type request struct {
	method, target, path []byte
	host                 []byte
	minor                int // HTTP/1.<minor>
	headers              []route.HeaderField
	contentLength        int64 // -1: none
	chunked              bool
	closeConn            bool // client asked to close (or HTTP/1.0 without keep-alive)
	keepAlive10          bool // HTTP/1.0 with Connection: keep-alive
	upgrade              bool // Connection: upgrade with Upgrade: websocket
	expectContinue       bool
	teTrailers           bool
	hasXFF, hasReqID     bool
	hostHeader           bool // a Host header field was present
	connTokens           [maxConnTokens][]byte
	nConnTokens          int
}

func (r *request) reset() {
	*r = request{headers: r.headers[:0], contentLength: -1}
}

// hasBody reports whether a body follows the head.
func (r *request) hasBody() bool { return r.chunked || r.contentLength > 0 }

// parseRequest parses head (from bufReader.head) strictly per RFC 9112:
// anything ambiguous is rejected, because a proxy that reads a message
// differently from its upstream enables request smuggling.
func parseRequest(r *request, head []byte, maxHeaders int) *httpError {
	r.reset()
	line, rest, err := nextLine(head)
	if err != nil {
		return err
	}
	if err := r.parseRequestLine(line); err != nil {
		return err
	}
	for {
		line, rest, err = nextLine(rest)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		if len(r.headers) == maxHeaders {
			return errTooManyHeaders
		}
		if err := r.addHeader(line); err != nil {
			return err
		}
	}
	return r.checkFraming()
}

// nextLine splits off one CRLF-terminated line (without the CRLF).
func nextLine(b []byte) (line, rest []byte, err *httpError) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, nil, errBadHeader
	}
	if i == 0 || b[i-1] != '\r' {
		return nil, nil, errBareLF
	}
	return b[:i-1], b[i+1:], nil
}

func (r *request) parseRequestLine(line []byte) *httpError {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return errBadRequestLine
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return errBadRequestLine
	}
	sp2 += sp1 + 1
	r.method, r.target = line[:sp1], line[sp1+1:sp2]
	if !isToken(r.method) || !validTarget(r.target) {
		return errBadRequestLine
	}
	switch string(line[sp2+1:]) {
	case "HTTP/1.1":
		r.minor = 1
	case "HTTP/1.0":
		r.minor, r.closeConn = 0, true
	default:
		if !bytes.HasPrefix(line[sp2+1:], []byte("HTTP/")) {
			return errNotHTTP
		}
		return errBadVersion
	}
	if string(r.method) == "CONNECT" {
		return errConnect
	}
	return r.splitTarget()
}

// splitTarget derives path (without query) and, for absolute-form, host.
func (r *request) splitTarget() *httpError {
	t := r.target
	switch {
	case t[0] == '/':
	case string(t) == "*" && string(r.method) == "OPTIONS":
	case len(t) > 7 && equalFold(t[:7], "http://"):
		rest := t[7:]
		i := bytes.IndexByte(rest, '/')
		if i < 0 {
			r.host, r.target = rest, []byte("/")
		} else {
			r.host, r.target = rest[:i], rest[i:]
		}
		if len(r.host) == 0 {
			return errBadRequestLine
		}
	default:
		return errBadRequestLine
	}
	r.path = r.target
	if i := bytes.IndexByte(r.path, '?'); i >= 0 {
		r.path = r.path[:i]
	}
	return nil
}

func (r *request) addHeader(line []byte) *httpError {
	if line[0] == ' ' || line[0] == '\t' {
		return errObsFold
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return errBadHeader
	}
	name, value := line[:colon], trimOWS(line[colon+1:])
	if !isToken(name) || !validValue(value) {
		return errBadHeader
	}
	if bytes.IndexByte(name, '_') >= 0 {
		// Dropped, as nginx does by default (underscores_in_headers off):
		// CGI-style servers and some frameworks read X_Foo and X-Foo as one
		// name, so a Content_Length or X_Forwarded_For the proxy passed on
		// would mean something else to the app than to the proxy.
		return nil
	}
	r.headers = append(r.headers, route.HeaderField{Name: name, Value: value})
	return r.interpret(name, value)
}

// interpret records the headers that framing and forwarding depend on.
func (r *request) interpret(name, value []byte) *httpError {
	switch len(name) {
	case 4:
		if equalFold(name, "host") {
			r.hostHeader = true
			if r.sawHost() {
				return errBadHost
			}
		}
	case 14:
		if equalFold(name, "content-length") {
			return r.setContentLength(value)
		}
	case 17:
		if equalFold(name, "transfer-encoding") {
			if r.chunked || !equalFold(value, "chunked") {
				return errBadTE
			}
			r.chunked = true
		}
	case 10:
		if equalFold(name, "connection") {
			r.addConnTokens(value)
		}
	case 2:
		if equalFold(name, "te") {
			r.teTrailers = hasToken(value, "trailers")
		}
	case 6:
		if equalFold(name, "expect") {
			r.expectContinue = equalFold(value, "100-continue")
		}
	case 15:
		r.hasXFF = r.hasXFF || equalFold(name, "x-forwarded-for")
	case 12:
		r.hasReqID = r.hasReqID || equalFold(name, "x-request-id")
	}
	return nil
}

// sawHost records a Host header and reports whether one was seen before.
// An absolute-form target's host takes precedence (RFC 9112 3.2.2).
func (r *request) sawHost() bool {
	n := 0
	for i := range r.headers {
		if equalFold(r.headers[i].Name, "host") {
			n++
		}
	}
	if n > 1 {
		return true
	}
	if r.host == nil {
		r.host = r.headers[len(r.headers)-1].Value
	}
	return false
}

func (r *request) setContentLength(v []byte) *httpError {
	if r.contentLength >= 0 || len(v) == 0 || len(v) > 18 {
		return errBadCL
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return errBadCL
		}
		n = n*10 + int64(c-'0')
	}
	r.contentLength = n
	return nil
}

func (r *request) addConnTokens(v []byte) {
	for len(v) > 0 {
		var tok []byte
		tok, v, _ = bytes.Cut(v, []byte(","))
		tok = trimOWS(tok)
		switch {
		case len(tok) == 0:
		case equalFold(tok, "close"):
			r.closeConn = true
		case equalFold(tok, "keep-alive"):
			r.keepAlive10 = true
		case r.nConnTokens < maxConnTokens:
			r.connTokens[r.nConnTokens] = tok
			r.nConnTokens++
		}
	}
}

// checkFraming applies RFC 9112 6.1-6.3 to the complete head.
func (r *request) checkFraming() *httpError {
	switch {
	case r.chunked && r.contentLength >= 0:
		return errCLAndTE
	case r.chunked && r.minor == 0:
		return errBadTE
	case r.minor == 1 && !r.hostHeader:
		// Also with an absolute-form target (RFC 9112 3.2: a client MUST
		// send Host in every HTTP/1.1 request; a server MUST answer 400).
		return errBadHost
	}
	if r.minor == 0 && r.keepAlive10 {
		r.closeConn = false
	}
	if r.connHas("upgrade") {
		if v, ok := r.header("upgrade"); ok && hasToken(v, "websocket") {
			r.upgrade = true
		}
	}
	return nil
}

// connHas reports whether the Connection header named tok.
func (r *request) connHas(tok string) bool {
	for i := 0; i < r.nConnTokens; i++ {
		if equalFold(r.connTokens[i], tok) {
			return true
		}
	}
	return false
}

// header returns the first value of a header; name is lower case.
func (r *request) header(name string) ([]byte, bool) {
	for i := range r.headers {
		if equalFold(r.headers[i].Name, name) {
			return r.headers[i].Value, true
		}
	}
	return nil, false
}

// idempotent reports whether the method is idempotent (RFC 9110 9.2.2).
func (r *request) idempotent() bool { return idempotentMethod(string(r.method)) }

// idempotentMethod reports whether a request method is idempotent (RFC
// 9110 9.2.2).
func idempotentMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}
