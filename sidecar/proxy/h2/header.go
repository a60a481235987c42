package h2

import (
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"
)

// Pseudo-header bits of a request (RFC 9113 8.3.1).
const (
	pseudoMethod uint8 = 1 << iota
	pseudoScheme
	pseudoAuthority
	pseudoPath
	pseudoProtocol
)

// block collects and checks the fields of one header block as the HPACK
// decoder emits them: a request's headers or trailers (RFC 9113 8.1-8.3).
// The first problem found is kept in malformed; the rest of the block is
// still decoded so that the connection's HPACK state stays in sync.
type block struct {
	fields    []hpack.HeaderField
	method    string
	scheme    string
	authority string
	path      string
	pseudo    uint8
	regular   bool // a regular field was seen: no pseudo-header may follow
	trailers  bool
	ended     bool  // END_STREAM was set on the HEADERS frame
	size      int   // RFC 9113 6.5.2 header list size
	maxSize   int   // 0: unlimited
	tooLarge  bool  // size passed maxSize: fields are dropped
	length    int64 // content-length; -1: none
	malformed string
}

func (b *block) reset(trailers bool, maxSize int) {
	fields := b.fields[:0]
	clear(fields[:cap(fields)])
	*b = block{fields: fields, trailers: trailers, maxSize: maxSize, length: -1}
}

// add checks and keeps one field.
func (b *block) add(f hpack.HeaderField) {
	b.size += len(f.Name) + len(f.Value) + 32
	if b.maxSize > 0 && b.size > b.maxSize {
		b.tooLarge = true
		return
	}
	if b.malformed != "" {
		return
	}
	if strings.HasPrefix(f.Name, ":") {
		b.addPseudo(f)
		return
	}
	b.regular = true
	if !validName(f.Name) || !httpguts.ValidHeaderFieldValue(f.Value) {
		b.malformed = "invalid header field " + strconv.Quote(f.Name)
		return
	}
	switch f.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		// Connection-specific fields are malformed in HTTP/2 (8.2.2).
		b.malformed = "connection-specific header " + f.Name
		return
	case "te":
		if f.Value != "trailers" {
			b.malformed = "te other than trailers"
			return
		}
	case "content-length":
		n, err := strconv.ParseInt(f.Value, 10, 64)
		if err != nil || n < 0 || (b.length >= 0 && b.length != n) {
			b.malformed = "invalid content-length"
			return
		}
		b.length = n
	}
	b.fields = append(b.fields, f)
}

func (b *block) addPseudo(f hpack.HeaderField) {
	var bit uint8
	var dst *string
	switch f.Name {
	case ":method":
		bit, dst = pseudoMethod, &b.method
	case ":scheme":
		bit, dst = pseudoScheme, &b.scheme
	case ":authority":
		bit, dst = pseudoAuthority, &b.authority
	case ":path":
		bit, dst = pseudoPath, &b.path
	case ":protocol":
		bit = pseudoProtocol
	default:
		b.malformed = "unknown pseudo-header " + f.Name
		return
	}
	switch {
	case b.trailers:
		b.malformed = "pseudo-header in trailers"
	case b.regular:
		b.malformed = "pseudo-header after a regular field"
	case b.pseudo&bit != 0:
		b.malformed = "duplicate " + f.Name
	}
	if b.malformed != "" {
		return
	}
	b.pseudo |= bit
	if dst != nil {
		*dst = f.Value
	}
}

// checkRequest checks the pseudo-headers of a complete request block.
func (b *block) checkRequest() {
	switch {
	case b.malformed != "":
	case b.pseudo&pseudoProtocol != 0:
		b.malformed = "extended CONNECT is not supported"
	case b.method == "CONNECT":
		if b.pseudo&(pseudoScheme|pseudoPath) != 0 || b.authority == "" {
			b.malformed = "malformed CONNECT request"
		}
	case b.pseudo&(pseudoMethod|pseudoScheme|pseudoPath) != pseudoMethod|pseudoScheme|pseudoPath:
		b.malformed = "missing pseudo-header"
	case b.path == "":
		b.malformed = "empty :path"
	case !httpguts.ValidHeaderFieldName(b.method):
		b.malformed = "invalid :method"
	}
}

// validName reports whether name is a lowercase field name token.
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' || !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return true
}

// statusText is the :status value of each code from 100 to 599, so that
// encoding a status costs no allocation.
var statusText = func() (t [600]string) {
	for i := 100; i < len(t); i++ {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

// StatusValue returns the :status value of code (100-599).
func StatusValue(code int) string {
	if code < 100 || code >= len(statusText) {
		return strconv.Itoa(code)
	}
	return statusText[code]
}
