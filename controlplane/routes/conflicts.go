package routes

import (
	"fmt"
	"slices"
	"strings"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// CheckConflicts reports whether r claims a host and match that another
// route already claims: two routes with a rule of the same match for the
// same host would make one of them unreachable, and which one wins would
// depend on the order the translator merges them. Routes in others named
// like r are ignored (r replaces them). Hosts are compared exactly ("*.a.com"
// does not conflict with "b.a.com": the more specific host wins, as in
// Envoy). It returns a *FieldError on r's rule, or nil. r and others must
// have passed Validate and are not modified.
func CheckConflicts(r *shoalv1.Route, others []*shoalv1.Route) error {
	claims := map[string]claim{}
	for _, o := range others {
		if o.GetName() != r.GetName() {
			addClaims(claims, o)
		}
	}
	for i, rule := range r.GetRules() {
		mk := matchKey(rule.GetMatch())
		for _, h := range r.GetHosts() {
			if c, ok := claims[h+"\x00"+mk]; ok {
				return &FieldError{
					Route:  r.GetName(),
					Field:  fmt.Sprintf("rules[%d].match", i),
					Reason: fmt.Sprintf("host %q with this match is already routed by route %q (rules[%d])", h, c.route, c.rule),
				}
			}
		}
	}
	return nil
}

// ValidateSet validates every route of a set (such as the routes of the
// files given to one apply) and checks that no two share a name or claim
// the same host and match.
func ValidateSet(rs []*shoalv1.Route) error {
	for i, r := range rs {
		if err := Validate(r); err != nil {
			return err
		}
		if j := slices.IndexFunc(rs[:i], func(o *shoalv1.Route) bool { return o.GetName() == r.GetName() }); j >= 0 {
			return &FieldError{Route: r.GetName(), Field: "name", Reason: "the same name is given twice"}
		}
		if err := CheckConflicts(r, rs[:i]); err != nil {
			return err
		}
	}
	return nil
}

type claim struct {
	route string
	rule  int
}

func addClaims(claims map[string]claim, r *shoalv1.Route) {
	for i, rule := range r.GetRules() {
		mk := matchKey(rule.GetMatch())
		for _, h := range r.GetHosts() {
			if _, ok := claims[h+"\x00"+mk]; !ok {
				claims[h+"\x00"+mk] = claim{route: r.GetName(), rule: i}
			}
		}
	}
}

// MatchKey is a canonical form of m: equal keys accept the same requests.
// Method order and header order do not matter; header names are
// case-insensitive. Two routes' rules conflict (CheckConflicts) when they
// share a host and their matches have equal keys.
func MatchKey(m *shoalv1.Match) string { return matchKey(m) }

func matchKey(m *shoalv1.Match) string {
	var b strings.Builder
	switch p := m.GetPath().(type) {
	case *shoalv1.Match_Prefix:
		if p.Prefix != "/" { // "/" accepts every path, like no path match
			fmt.Fprintf(&b, "prefix=%q;", p.Prefix)
		}
	case *shoalv1.Match_Exact:
		fmt.Fprintf(&b, "exact=%q;", p.Exact)
	case *shoalv1.Match_Regex:
		fmt.Fprintf(&b, "regex=%q;", p.Regex)
	}
	methods := slices.Sorted(slices.Values(m.GetMethods()))
	fmt.Fprintf(&b, "methods=%q;", methods)
	headers := make([]string, 0, len(m.GetHeaders()))
	for _, h := range m.GetHeaders() {
		v := "present"
		switch hv := h.GetValue().(type) {
		case *shoalv1.HeaderMatch_Exact:
			v = fmt.Sprintf("exact=%q", hv.Exact)
		case *shoalv1.HeaderMatch_Prefix:
			v = fmt.Sprintf("prefix=%q", hv.Prefix)
		case *shoalv1.HeaderMatch_Regex:
			v = fmt.Sprintf("regex=%q", hv.Regex)
		}
		headers = append(headers, fmt.Sprintf("%q:%s:%t", strings.ToLower(h.GetName()), v, h.GetInvert()))
	}
	slices.Sort(headers)
	fmt.Fprintf(&b, "headers=%q", headers)
	return b.String()
}
