package xds

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-mesh/shoal/controlplane/routes"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// Limits of the route model that the translation enforces itself, so that a
// route the validator let through never becomes a resource a client NACKs.
const (
	maxWeight      = 10000
	maxAttempts    = 10
	defaultTimeout = 15 * time.Second
	// maxDuration bounds timeouts well inside every client's range.
	maxDuration = 24 * time.Hour
)

// compiledRoute is a route that passed the translator's own checks, in a
// form independent of the client's capabilities.
type compiledRoute struct {
	name  string
	hosts []string // lowercase, deduplicated, in the route's order
	rules []*compiledRule
	size  int // encoded size of the route (fitRoutes)
}

type compiledRule struct {
	// route and index name the rule where it came from: route entries are
	// named <route>/<index> in every virtual host that merges the rule.
	route    string
	index    int
	match    *shoalv1.Match
	dests    []dest
	strategy shoalv1.Strategy
	hashKey  *shoalv1.HashKey // nil means none given
	// balance is the bounded-load factor in percent (0: unbounded).
	balance uint32
	timeout time.Duration // with timeoutSet; 0 means none (Envoy's 0s)
	// timeoutSet is false when the rule gives no timeout: the default applies.
	timeoutSet bool
	retry      *shoalv1.RetryPolicy
	// tune holds the rule's proxy settings for its clusters (issue 17);
	// nil when it sets none, so the rule shares the default clusters.
	tune *tuning
}

type dest struct {
	service string
	subset  map[string]string
	weight  uint32
}

// compileRoutes checks routes in name order. A route with an error or a
// duplicate name is rejected, and so is a route with a rule whose host and
// match an earlier accepted route already routes: routes.CheckConflicts
// refuses such a write, and this catches one written around the API (the
// later route by name would be unreachable for that host). Several routes
// may otherwise claim one host: routeConfigs merges them.
func compileRoutes(rs []*shoalv1.Route) ([]*compiledRoute, []*shoalv1.RouteStatus) {
	sorted := slices.Clone(rs)
	sorted = slices.DeleteFunc(sorted, func(r *shoalv1.Route) bool { return r == nil })
	slices.SortStableFunc(sorted, func(a, b *shoalv1.Route) int {
		return cmp.Or(cmp.Compare(a.GetName(), b.GetName()), cmp.Compare(a.GetVersion(), b.GetVersion()))
	})
	var out []*compiledRoute
	var statuses []*shoalv1.RouteStatus
	claimed := make(claims)
	seen := make(map[string]bool)
	total := 0 // encoded size of the accepted routes
	for _, r := range sorted {
		st := &shoalv1.RouteStatus{Name: r.GetName(), Version: r.GetVersion(), Accepted: true}
		statuses = append(statuses, st)
		cr, err := compileRoute(r)
		if err == nil && seen[r.GetName()] {
			err = errors.New("duplicate route name")
		}
		// routes.MaxTotalSize keeps responses under xdslimit.MaxMessageSize;
		// the store enforces it, this catches routes written around it.
		if n := proto.Size(r); err == nil && total+n > routes.MaxTotalSize {
			err = fmt.Errorf("left out: with the routes before it by name, all routes would be %d bytes, over the %d-byte limit of what the xDS path carries", total+n, routes.MaxTotalSize)
		} else if err == nil {
			total += n
		}
		if err == nil {
			err = claimed.claim(cr)
		}
		seen[r.GetName()] = true
		if err != nil {
			st.Accepted, st.Error = false, err.Error()
			continue
		}
		cr.size = proto.Size(r)
		out = append(out, cr)
	}
	return out, statuses
}

// claims maps a host and a canonical match (routes.MatchKey) to the
// accepted route rule that routes them.
type claims map[string]*compiledRule

// claim records cr's rules in c, or fails without recording anything if a
// rule of cr has the host and match of an accepted route's rule.
func (c claims) claim(cr *compiledRoute) error {
	keys := make([]string, len(cr.rules))
	for i, rule := range cr.rules {
		keys[i] = routes.MatchKey(rule.match)
		for _, h := range cr.hosts {
			if o, ok := c[h+"\x00"+keys[i]]; ok {
				return fmt.Errorf("rules[%d].match: host %q with this match is already routed by route %q (rules[%d])", i, h, o.route, o.index)
			}
		}
	}
	for i, rule := range cr.rules {
		for _, h := range cr.hosts {
			c[h+"\x00"+keys[i]] = rule
		}
	}
	return nil
}

// domains are the virtual-host domains of a route host: a bare name also
// matches with any port.
func domains(host string) []string {
	if strings.ContainsAny(host, ":*") {
		return []string{host}
	}
	return []string{host, host + ":*"}
}

var (
	hostRE       = regexp.MustCompile(`^(\*\.|\*-)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?$`)
	headerNameRE = regexp.MustCompile(`^[a-z0-9!#$%&'*+.^_` + "`" + `|~-]+$`)
	methodRE     = regexp.MustCompile(`^[A-Z]{1,20}$`)
)

func compileRoute(r *shoalv1.Route) (*compiledRoute, error) {
	if !registry.ValidName(r.GetName()) {
		return nil, fmt.Errorf("name %q is not a lowercase DNS label", r.GetName())
	}
	cr := &compiledRoute{name: r.GetName()}
	for _, h := range r.GetHosts() {
		h = strings.ToLower(h)
		if h != "*" && (len(h) > 253 || !hostRE.MatchString(h)) {
			return nil, fmt.Errorf("host %q is not a host name, *.domain, host:port or *", h)
		}
		if !slices.Contains(cr.hosts, h) {
			cr.hosts = append(cr.hosts, h)
		}
	}
	if len(cr.hosts) == 0 {
		return nil, errors.New("no hosts")
	}
	if len(r.GetRules()) == 0 {
		return nil, errors.New("no rules")
	}
	for i, rule := range r.GetRules() {
		cr2, err := compileRule(rule)
		if err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, err)
		}
		cr2.route, cr2.index = cr.name, i
		cr.rules = append(cr.rules, cr2)
	}
	return cr, nil
}

func compileRule(r *shoalv1.Rule) (*compiledRule, error) {
	if r == nil {
		return nil, errors.New("empty rule")
	}
	if err := checkMatch(r.GetMatch()); err != nil {
		return nil, fmt.Errorf("match: %w", err)
	}
	cr := &compiledRule{match: r.GetMatch(), strategy: r.GetStrategy(), retry: r.GetRetry(), balance: r.GetBalanceFactor()}
	var err error
	if cr.dests, err = compileDests(r.GetDestinations()); err != nil {
		return nil, err
	}
	if cr.hashKey, err = compileHashKey(r.GetStrategy(), r.GetHashKey()); err != nil {
		return nil, err
	}
	if cr.timeout, err = checkDuration("timeout", r.GetTimeout()); err != nil {
		return nil, err
	}
	cr.timeoutSet = r.GetTimeout() != nil
	if err := checkRetry(r.GetRetry()); err != nil {
		return nil, fmt.Errorf("retry: %w", err)
	}
	if cr.tune, err = compileTuning(r); err != nil {
		return nil, err
	}
	return cr, nil
}

func checkMatch(m *shoalv1.Match) error {
	switch p := m.GetPath().(type) {
	case *shoalv1.Match_Prefix:
		if !strings.HasPrefix(p.Prefix, "/") {
			return fmt.Errorf("prefix %q must start with /", p.Prefix)
		}
	case *shoalv1.Match_Exact:
		if !strings.HasPrefix(p.Exact, "/") {
			return fmt.Errorf("exact %q must start with /", p.Exact)
		}
	case *shoalv1.Match_Regex:
		if err := checkRegex(p.Regex); err != nil {
			return err
		}
	}
	for _, meth := range m.GetMethods() {
		if !methodRE.MatchString(meth) {
			return fmt.Errorf("method %q is not an uppercase HTTP method", meth)
		}
	}
	for _, h := range m.GetHeaders() {
		if err := checkHeaderMatch(h); err != nil {
			return err
		}
	}
	return nil
}

func checkHeaderMatch(h *shoalv1.HeaderMatch) error {
	name := strings.ToLower(h.GetName())
	if !headerNameRE.MatchString(name) || strings.HasPrefix(name, "grpc-") {
		return fmt.Errorf("header %q is not a valid header name (grpc- headers cannot be matched)", h.GetName())
	}
	switch v := h.GetValue().(type) {
	case *shoalv1.HeaderMatch_Prefix:
		if v.Prefix == "" {
			return fmt.Errorf("header %q: empty prefix", name)
		}
	case *shoalv1.HeaderMatch_Regex:
		return checkRegex(v.Regex)
	}
	return nil
}

// checkRegex accepts RE2 (Go's regexp is RE2 syntax, like Envoy's and
// gRPC's matchers) of a bounded size.
func checkRegex(re string) error {
	if re == "" || len(re) > 1024 {
		return fmt.Errorf("regex %q must have 1-1024 characters", re)
	}
	if _, err := regexp.Compile(re); err != nil {
		return fmt.Errorf("regex %q: %w", re, err)
	}
	return nil
}

func compileDests(ds []*shoalv1.Destination) ([]dest, error) {
	if len(ds) == 0 {
		return nil, errors.New("no destinations")
	}
	out := make([]dest, 0, len(ds))
	for i, d := range ds {
		if !registry.ValidName(d.GetService()) {
			return nil, fmt.Errorf("destinations[%d]: service %q is not a lowercase DNS label", i, d.GetService())
		}
		w := d.GetWeight()
		switch {
		case w == 0 && len(ds) == 1:
			w = 1
		case w < 1 || w > maxWeight:
			return nil, fmt.Errorf("destinations[%d]: weight %d is outside 1-%d", i, w, maxWeight)
		}
		for k := range d.GetSubset() {
			if k == "" || len(k) > 253 {
				return nil, fmt.Errorf("destinations[%d]: subset key %q must have 1-253 characters", i, k)
			}
		}
		out = append(out, dest{service: d.GetService(), subset: d.GetSubset(), weight: uint32(w)})
	}
	return out, nil
}

// compileHashKey checks the key of a hashing strategy; IP_HASH defaults to
// the source IP, RING_HASH and MAGLEV require a key.
func compileHashKey(s shoalv1.Strategy, hk *shoalv1.HashKey) (*shoalv1.HashKey, error) {
	switch s {
	case shoalv1.Strategy_STRATEGY_IP_HASH:
		if hk.GetKey() == nil {
			return &shoalv1.HashKey{Key: &shoalv1.HashKey_SourceIp{SourceIp: true}}, nil
		}
	case shoalv1.Strategy_STRATEGY_RING_HASH, shoalv1.Strategy_STRATEGY_MAGLEV:
		if hk.GetKey() == nil {
			return nil, fmt.Errorf("strategy %s needs a hash_key", s)
		}
	case shoalv1.Strategy_STRATEGY_UNSPECIFIED, shoalv1.Strategy_STRATEGY_ROUND_ROBIN,
		shoalv1.Strategy_STRATEGY_LEAST_REQUEST, shoalv1.Strategy_STRATEGY_RANDOM,
		shoalv1.Strategy_STRATEGY_LEAST_LOADED:
		return nil, nil // a hash key means nothing without hashing
	default:
		return nil, fmt.Errorf("unknown strategy %d", s)
	}
	switch k := hk.GetKey().(type) {
	case *shoalv1.HashKey_SourceIp:
		if !k.SourceIp {
			return nil, errors.New("hash_key: source_ip must be true when set")
		}
	case *shoalv1.HashKey_Header:
		if name := strings.ToLower(k.Header); !headerNameRE.MatchString(name) || strings.HasSuffix(name, "-bin") {
			return nil, fmt.Errorf("hash_key: header %q is not a valid (non-binary) header name", k.Header)
		}
	case *shoalv1.HashKey_Cookie:
		if k.Cookie == "" || len(k.Cookie) > 256 || strings.ContainsAny(k.Cookie, " \t;,=\"") {
			return nil, fmt.Errorf("hash_key: cookie %q is not a valid cookie name", k.Cookie)
		}
	}
	return hk, nil
}

func checkDuration(field string, d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	v := d.AsDuration()
	if v < 0 || v > maxDuration {
		return 0, fmt.Errorf("%s: %v is outside 0-%v", field, v, maxDuration)
	}
	return v, nil
}

// Retry conditions: Envoy's names for HTTP and for gRPC statuses.
var (
	httpRetryOn = []string{"5xx", "gateway-error", "reset", "connect-failure", "envoy-ratelimited",
		"retriable-4xx", "refused-stream", "retriable-status-codes", "retriable-headers", "http3-post-connect-failure"}
	grpcRetryOn = []string{"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}
)

func checkRetry(r *shoalv1.RetryPolicy) error {
	if r == nil {
		return nil
	}
	if a := r.GetAttempts(); a < 0 || a > maxAttempts {
		return fmt.Errorf("attempts %d is outside 0-%d", a, maxAttempts)
	}
	if _, err := checkDuration("per_try_timeout", r.GetPerTryTimeout()); err != nil {
		return err
	}
	for _, on := range r.GetRetryOn() {
		if !slices.Contains(httpRetryOn, on) && !slices.Contains(grpcRetryOn, on) {
			return fmt.Errorf("retry_on %q is not a known condition", on)
		}
	}
	for _, c := range r.GetRetriableStatusCodes() {
		if c < 100 || c > 599 {
			return fmt.Errorf("retriable status code %d is outside 100-599", c)
		}
	}
	return nil
}
