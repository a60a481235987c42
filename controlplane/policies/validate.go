package policies

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// Limits of one policy, so that a policy cannot blow up the xDS resources
// every sidecar receives.
const (
	MaxRules   = 64
	MaxEntries = 64 // callers, paths or methods of one rule
)

// Store errors. Callers branch on them with errors.Is.
var (
	// ErrNotFound means there is no policy with that name.
	ErrNotFound = errors.New("policies: policy not found")
	// ErrAlreadyExists means Create found a policy with that name.
	ErrAlreadyExists = errors.New("policies: policy already exists")
	// ErrVersionMismatch means Update or Delete was given a version that is
	// no longer the policy's current version.
	ErrVersionMismatch = errors.New("policies: policy version is not current")
)

// FieldError is an invalid policy: Field is the path of the offending
// field with proto names and indexes ("rules[0].callers[1]").
type FieldError struct {
	Policy string
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	where := "policy"
	if e.Policy != "" {
		where = fmt.Sprintf("policy %q", e.Policy)
	}
	if e.Field == "" {
		return fmt.Sprintf("policies: invalid %s: %s", where, e.Reason)
	}
	return fmt.Sprintf("policies: invalid %s: %s: %s", where, e.Field, e.Reason)
}

// Validate checks p and returns a *FieldError naming the first invalid
// field, or nil.
func Validate(p *shoalv1.AuthorizationPolicy) error {
	if err := validate(p); err != nil {
		err.Policy = p.GetName()
		return err
	}
	return nil
}

func validate(p *shoalv1.AuthorizationPolicy) *FieldError {
	switch {
	case p == nil:
		return &FieldError{Reason: "no policy given"}
	case !registry.ValidName(p.GetName()):
		return &FieldError{Field: "name", Reason: fmt.Sprintf("%q is not a lowercase DNS label of at most 63 characters", p.GetName())}
	case !registry.ValidName(p.GetService()):
		return &FieldError{Field: "service", Reason: fmt.Sprintf("%q is not a service name (a lowercase DNS label of at most 63 characters)", p.GetService())}
	case len(p.GetRules()) == 0:
		return &FieldError{Field: "rules", Reason: "at least one rule is required (delete the policy to allow every caller)"}
	case len(p.GetRules()) > MaxRules:
		return &FieldError{Field: "rules", Reason: fmt.Sprintf("%d rules, at most %d", len(p.GetRules()), MaxRules)}
	}
	for i, r := range p.GetRules() {
		if err := validateRule(fmt.Sprintf("rules[%d]", i), r); err != nil {
			return err
		}
	}
	return nil
}

func validateRule(path string, r *shoalv1.AuthorizationRule) *FieldError {
	switch {
	case len(r.GetCallers()) == 0:
		return &FieldError{Field: path + ".callers", Reason: "at least one caller is required"}
	case len(r.GetCallers()) > MaxEntries || len(r.GetPaths()) > MaxEntries || len(r.GetMethods()) > MaxEntries:
		return &FieldError{Field: path, Reason: fmt.Sprintf("at most %d callers, paths and methods each", MaxEntries)}
	}
	for i, c := range r.GetCallers() {
		if err := ValidateCaller(c); err != nil {
			return &FieldError{Field: fmt.Sprintf("%s.callers[%d]", path, i), Reason: err.Error()}
		}
	}
	for i, p := range r.GetPaths() {
		if !strings.HasPrefix(p, "/") {
			return &FieldError{Field: fmt.Sprintf("%s.paths[%d]", path, i), Reason: fmt.Sprintf("%q is not a path prefix starting with /", p)}
		}
	}
	for i, m := range r.GetMethods() {
		if !isToken(m) || strings.ToUpper(m) != m {
			return &FieldError{Field: fmt.Sprintf("%s.methods[%d]", path, i), Reason: fmt.Sprintf("%q is not an upper-case HTTP method", m)}
		}
	}
	return nil
}

// ValidateCaller checks one caller pattern: "*", "ns/<namespace>/*",
// "ns/<namespace>/svc/<service>" or a SPIFFE ID.
func ValidateCaller(c string) error {
	if c == "*" {
		return nil
	}
	if rest, ok := strings.CutPrefix(c, "ns/"); ok {
		ns, tail, _ := strings.Cut(rest, "/")
		if !registry.ValidName(ns) {
			return fmt.Errorf("%q: namespace %q is not a lowercase DNS label", c, ns)
		}
		if tail == "*" {
			return nil
		}
		if svc, ok := strings.CutPrefix(tail, "svc/"); ok && registry.ValidName(svc) {
			return nil
		}
		return fmt.Errorf("%q is not ns/<namespace>/* or ns/<namespace>/svc/<service>", c)
	}
	if _, err := spiffeid.FromString(c); err != nil {
		return fmt.Errorf("%q is not a SPIFFE ID, ns/<namespace>/*, ns/<namespace>/svc/<service> or *: %v", c, err)
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token (a method name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r) {
			return false
		}
	}
	return true
}
