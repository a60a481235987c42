package route

import (
	"bytes"
	"fmt"
	"regexp"

	"github.com/shoal-mesh/shoal/internal/regexsize"
	"github.com/shoal-mesh/shoal/sidecar/lb"
)

// HeaderField is one request header as raw bytes. Names compare ASCII
// case-insensitively.
type HeaderField struct {
	Name, Value []byte
}

// Request is the view of a request that routing reads. The proxy fills it
// from its parse buffers; the slices are borrowed for the duration of one
// call and never retained.
type Request struct {
	// Host is the Host header or :authority, with or without a port.
	Host []byte
	// Method is the request method ("GET").
	Method []byte
	// Path is the request path without the query string.
	Path []byte
	// Headers are the request headers in arrival order.
	Headers []HeaderField
	// SourceIP is the client IP used by HashSourceIP (textual form).
	SourceIP []byte
}

// Header returns the first value of the named header; name must be lower
// case. It does not allocate.
func (r *Request) Header(name string) ([]byte, bool) {
	for i := range r.Headers {
		if equalFold(r.Headers[i].Name, name) {
			return r.Headers[i].Value, true
		}
	}
	return nil, false
}

// Match selects requests. All set conditions must hold. Exactly one of
// PathPrefix, Path and PathRegex may be set; none matches every path.
type Match struct {
	// PathPrefix matches paths starting with it ("/" matches everything).
	PathPrefix string
	// Path matches the exact path (without the query string).
	Path string
	// PathRegex matches the whole path (RE2 syntax, anchored by New).
	PathRegex string
	// Methods, if non-empty, lists the allowed methods.
	Methods []string
	// Headers must all match.
	Headers []HeaderMatch

	pathRE *regexp.Regexp
}

// HeaderMatch matches one request header (Envoy HeaderMatcher). With
// several fields of the same name, it matches when any value matches.
type HeaderMatch struct {
	// Name is the header name; New lower-cases it.
	Name string
	// Exact, Prefix, Suffix, Contains and Regex are alternative value
	// conditions; at most one may be set. Present matches any value (and
	// is implied when none is set).
	Exact, Prefix, Suffix, Contains, Regex string
	// Present requires only that the header exists.
	Present bool
	// Invert negates the result (an absent header then matches).
	Invert bool

	re *regexp.Regexp
}

func (m *Match) compile() error {
	n := 0
	for _, s := range []string{m.PathPrefix, m.Path, m.PathRegex} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return errOneOf("path_prefix, path, path_regex")
	}
	if m.PathRegex != "" {
		re, err := compileAnchored(m.PathRegex)
		if err != nil {
			return fmt.Errorf("path_regex: %w", err)
		}
		m.pathRE = re
	}
	m.Headers = append([]HeaderMatch(nil), m.Headers...)
	for i := range m.Headers {
		if err := m.Headers[i].compile(); err != nil {
			return err
		}
	}
	return nil
}

func (h *HeaderMatch) compile() error {
	h.Name = string(bytes.ToLower([]byte(h.Name)))
	n := 0
	for _, s := range []string{h.Exact, h.Prefix, h.Suffix, h.Contains, h.Regex} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return errOneOf("header exact, prefix, suffix, contains, regex")
	}
	if h.Regex != "" {
		re, err := compileAnchored(h.Regex)
		if err != nil {
			return fmt.Errorf("header %q regex: %w", h.Name, err)
		}
		h.re = re
	}
	return nil
}

// matches reports whether r satisfies m. It does not allocate.
func (m *Match) matches(r *Request) bool {
	switch {
	case m.Path != "" && string(r.Path) != m.Path:
		return false
	case m.PathPrefix != "" && !bytes.HasPrefix(r.Path, []byte(m.PathPrefix)):
		return false
	case m.pathRE != nil && !m.pathRE.Match(r.Path):
		return false
	}
	if len(m.Methods) > 0 && !m.methodAllowed(r.Method) {
		return false
	}
	for i := range m.Headers {
		if !m.Headers[i].matches(r) {
			return false
		}
	}
	return true
}

func (m *Match) methodAllowed(method []byte) bool {
	for _, allowed := range m.Methods {
		if string(method) == allowed {
			return true
		}
	}
	return false
}

func (h *HeaderMatch) matches(r *Request) bool {
	found := false
	for i := range r.Headers {
		f := &r.Headers[i]
		if equalFold(f.Name, h.Name) && h.value(f.Value) {
			found = true
			break
		}
	}
	return found != h.Invert
}

func (h *HeaderMatch) value(v []byte) bool {
	switch {
	case h.Exact != "":
		return string(v) == h.Exact
	case h.Prefix != "":
		return bytes.HasPrefix(v, []byte(h.Prefix))
	case h.Suffix != "":
		return bytes.HasSuffix(v, []byte(h.Suffix))
	case h.Contains != "":
		return bytes.Contains(v, []byte(h.Contains))
	case h.re != nil:
		return h.re.Match(v)
	}
	return true
}

// HashKey computes the request's hash key from r's hash policies, combined
// as Envoy does (rotate left by one, xor). ok is false when no policy
// yields a key. It does not allocate.
func (rt *Route) HashKey(r *Request) (h uint64, ok bool) {
	for i := range rt.Hash {
		p := &rt.Hash[i]
		v, found := p.key(r)
		if !found {
			continue
		}
		k := lb.HashBytes(v)
		if ok {
			k ^= h<<1 | h>>63
		}
		h, ok = k, true
		if p.Terminal {
			break
		}
	}
	return h, ok
}

func (p *HashPolicy) key(r *Request) ([]byte, bool) {
	switch p.Kind {
	case HashSourceIP:
		return r.SourceIP, len(r.SourceIP) > 0
	case HashHeader:
		return r.Header(p.Name)
	case HashCookie:
		return cookie(r, p.Name)
	}
	return nil, false
}

// cookie finds a cookie value in the Cookie headers without allocating.
func cookie(r *Request, name string) ([]byte, bool) {
	for i := range r.Headers {
		if !equalFold(r.Headers[i].Name, "cookie") {
			continue
		}
		rest := r.Headers[i].Value
		for len(rest) > 0 {
			var pair []byte
			pair, rest, _ = bytes.Cut(rest, []byte(";"))
			k, v, ok := bytes.Cut(bytes.TrimSpace(pair), []byte("="))
			if ok && string(k) == name {
				return bytes.Trim(v, `"`), true
			}
		}
	}
	return nil, false
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring
// the case of b.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// compileAnchored compiles a whole-value regex, refusing one whose program
// is over regexsize.Max (Envoy's max_program_size): the control plane's
// validation refuses such a route, and the sidecar does not accept from xDS
// what the API refuses (a route written around the API, or another control
// plane), since it would cost every request matched against it.
func compileAnchored(expr string) (*regexp.Regexp, error) {
	anchored := "^(?:" + expr + ")$"
	if err := regexsize.Check(anchored); err != nil {
		return nil, err
	}
	return regexp.Compile(anchored)
}
