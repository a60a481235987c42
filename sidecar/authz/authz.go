// Package authz decides whether the inbound sidecar lets a request reach
// its app, from the service's authorization policies (delivered as Envoy
// RBAC, action ALLOW, and compiled by sidecar/xdstable).
//
// A nil *Policy allows everything (no policy names the service: default
// allow). Otherwise a request is allowed when some rule matches both its
// caller (a principal) and the request (a permission); a request without
// an authenticated caller matches no authenticated principal.
package authz

import (
	"bytes"
	"fmt"
)

// Request is what a decision reads of a request. The slices are not
// retained.
type Request struct {
	// Caller is the caller's SPIFFE ID from its mTLS client certificate;
	// "" when the connection is not authenticated.
	Caller string
	Method []byte
	// Path is the request path without the query.
	Path []byte
}

// Matcher matches requests; it must be safe for concurrent use.
type Matcher func(*Request) bool

// Rule allows a request matched by one of Permissions and one of
// Principals.
type Rule struct {
	Name        string
	Permissions []Matcher
	Principals  []Matcher
}

// Policy is the compiled authorization of one service. It is immutable
// and safe for concurrent use.
type Policy struct {
	// Service is the protected service (for the denial reason).
	Service string
	Rules   []Rule
}

// Check returns "" if p allows r, else the reason of the denial, in plain
// words for the caller.
func (p *Policy) Check(r *Request) string {
	if p == nil {
		return ""
	}
	for i := range p.Rules {
		if anyMatch(p.Rules[i].Permissions, r) && anyMatch(p.Rules[i].Principals, r) {
			return ""
		}
	}
	if r.Caller == "" {
		return fmt.Sprintf("RBAC: access denied: %s requires an authenticated caller (mTLS client certificate)", p.Service)
	}
	return fmt.Sprintf("RBAC: access denied: %s may not call %s %s on %s", r.Caller, r.Method, r.Path, p.Service)
}

func anyMatch(ms []Matcher, r *Request) bool {
	for _, m := range ms {
		if m(r) {
			return true
		}
	}
	return false
}

// Any matches every request.
func Any(*Request) bool { return true }

// All matches when every m matches.
func All(ms ...Matcher) Matcher {
	return func(r *Request) bool {
		for _, m := range ms {
			if !m(r) {
				return false
			}
		}
		return true
	}
}

// OneOf matches when some m matches.
func OneOf(ms ...Matcher) Matcher { return func(r *Request) bool { return anyMatch(ms, r) } }

// Not inverts m.
func Not(m Matcher) Matcher { return func(r *Request) bool { return !m(r) } }

// String matches a string-valued part of a request (path, method, caller).
type String struct {
	Exact, Prefix, Suffix, Contains string
	// Kind says which of the four is set: "exact", "prefix", "suffix" or
	// "contains".
	Kind       string
	IgnoreCase bool
}

// Match reports whether v matches s.
func (s String) Match(v []byte) bool {
	f := func(a, b []byte) bool { return bytes.Equal(a, b) }
	if s.IgnoreCase {
		f = bytes.EqualFold
	}
	switch s.Kind {
	case "exact":
		return f(v, []byte(s.Exact))
	case "prefix":
		return len(v) >= len(s.Prefix) && f(v[:len(s.Prefix)], []byte(s.Prefix))
	case "suffix":
		return len(v) >= len(s.Suffix) && f(v[len(v)-len(s.Suffix):], []byte(s.Suffix))
	case "contains":
		if s.IgnoreCase {
			return bytes.Contains(bytes.ToLower(v), bytes.ToLower([]byte(s.Contains)))
		}
		return bytes.Contains(v, []byte(s.Contains))
	}
	return false
}

// Path matches the request path.
func Path(s String) Matcher { return func(r *Request) bool { return s.Match(r.Path) } }

// Method matches the request method.
func Method(s String) Matcher { return func(r *Request) bool { return s.Match(r.Method) } }

// Authenticated matches an authenticated caller whose SPIFFE ID matches
// name; a nil name matches any authenticated caller.
func Authenticated(name *String) Matcher {
	return func(r *Request) bool {
		return r.Caller != "" && (name == nil || name.Match([]byte(r.Caller)))
	}
}
