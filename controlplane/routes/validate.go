package routes

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-mesh/shoal/internal/regexsize"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// Limits enforced by Validate.
const (
	// MaxRouteSize bounds the encoded size of one route (issue 3).
	MaxRouteSize = 1 << 20
	// MaxTotalSize bounds the encoded size of all routes together, so that
	// the xDS responses they make stay well under xdslimit.MaxMessageSize
	// (issue 16: two 1 MiB routes made an 8.2 MB response that no sidecar
	// accepted, and no later change reached them). The store refuses a
	// write over it; the control plane leaves out, and names, a route
	// written around the API that would go over it.
	MaxTotalSize = 2 << 20
	// MaxWeight bounds Destination.Weight so that summing the weights of a
	// split cannot overflow.
	MaxWeight = 10000
	// MaxRetryAttempts bounds RetryPolicy.Attempts.
	MaxRetryAttempts = 10
	// MaxTimeout bounds Rule.Timeout and RetryPolicy.PerTryTimeout.
	MaxTimeout = 24 * time.Hour
)

// RetryOn are the values RetryPolicy.RetryOn accepts (Envoy's names, see
// route.proto): the HTTP conditions of x-envoy-retry-on, then the gRPC
// ones of x-envoy-retry-grpc-on, which retry a trailers-only response by
// its grpc-status. Envoy takes both kinds in one retry_on list.
var RetryOn = []string{
	"connect-failure", "refused-stream", "reset", "5xx", "gateway-error", "retriable-status-codes",
	"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
}

// Validate checks one route on its own. It returns a *FieldError naming the
// first offending field, or nil. It ignores Version (set by the store) and
// does not modify r. Conflicts with other routes are CheckConflicts' job.
func Validate(r *shoalv1.Route) error {
	if err := validate(r); err != nil {
		err.Route = r.GetName()
		return err
	}
	return nil
}

func validate(r *shoalv1.Route) *FieldError {
	if r == nil {
		return fieldErr("", "route is required")
	}
	if n := proto.Size(r); n > MaxRouteSize {
		return fieldErr("", "message is %d bytes, over the 1 MiB limit", n)
	}
	if !registry.ValidName(r.GetName()) {
		return fieldErr("name", "%q is not a lowercase DNS label of at most 63 characters", r.GetName())
	}
	if err := validateHosts(r.GetHosts()); err != nil {
		return err
	}
	if len(r.GetRules()) == 0 {
		return fieldErr("rules", "at least one rule is required")
	}
	seen := map[string]int{}
	for i, rule := range r.GetRules() {
		p := fmt.Sprintf("rules[%d]", i)
		if err := validateRule(p, rule); err != nil {
			return err
		}
		k := matchKey(rule.GetMatch())
		if j, dup := seen[k]; dup {
			return fieldErr(p+".match", "same match as rules[%d], so this rule can never be reached", j)
		}
		seen[k] = i
	}
	return nil
}

func validateHosts(hosts []string) *FieldError {
	if len(hosts) == 0 {
		return fieldErr("hosts", "at least one host is required")
	}
	for i, h := range hosts {
		p := fmt.Sprintf("hosts[%d]", i)
		if err := validHost(h); err != "" {
			return fieldErr(p, "%q %s", h, err)
		}
		if j := slices.Index(hosts[:i], h); j >= 0 {
			return fieldErr(p, "%q duplicates hosts[%d]", h, j)
		}
	}
	return nil
}

// validHost accepts "*", a service name, a DNS name and "*.<DNS name>". It
// returns what is wrong, or "".
func validHost(h string) string {
	if h == "*" {
		return ""
	}
	if strings.ToLower(h) != h {
		return "must be lowercase"
	}
	name := strings.TrimPrefix(h, "*.")
	if len(name) > 253 || name == "" {
		return "is not a DNS name of at most 253 characters"
	}
	for _, label := range strings.Split(name, ".") {
		if !registry.ValidName(label) {
			return "is not a service name, a DNS name or *.domain (no ports, no wildcards inside)"
		}
	}
	return ""
}

func validateRule(p string, rule *shoalv1.Rule) *FieldError {
	if rule == nil {
		return fieldErr(p, "rule is empty")
	}
	if err := validateMatch(p+".match", rule.GetMatch()); err != nil {
		return err
	}
	if err := validateDestinations(p+".destinations", rule.GetDestinations()); err != nil {
		return err
	}
	if err := validateStrategy(p, rule); err != nil {
		return err
	}
	if err := validateDuration(p+".timeout", rule.GetTimeout()); err != nil {
		return err
	}
	if err := validateRetry(p+".retry", rule.GetRetry(), rule.GetTimeout()); err != nil {
		return err
	}
	if err := validateCircuitBreakers(p+".circuit_breakers", rule.GetCircuitBreakers()); err != nil {
		return err
	}
	if err := validateSlowStart(p+".slow_start", rule.GetStrategy(), rule.GetSlowStart()); err != nil {
		return err
	}
	return validateStallDetection(p+".stall_detection", rule.GetStallDetection())
}

func validateMatch(p string, m *shoalv1.Match) *FieldError {
	if m == nil {
		return nil
	}
	switch path := m.GetPath().(type) {
	case *shoalv1.Match_Prefix:
		if !strings.HasPrefix(path.Prefix, "/") {
			return fieldErr(p+".prefix", "%q must start with /", path.Prefix)
		}
	case *shoalv1.Match_Exact:
		if !strings.HasPrefix(path.Exact, "/") {
			return fieldErr(p+".exact", "%q must start with /", path.Exact)
		}
	case *shoalv1.Match_Regex:
		if err := validRegex(path.Regex); err != "" {
			return fieldErr(p+".regex", "%s", err)
		}
	}
	for i, method := range m.GetMethods() {
		mp := fmt.Sprintf("%s.methods[%d]", p, i)
		if !isToken(method) {
			return fieldErr(mp, "%q is not an HTTP method token (RFC 9110)", method)
		}
		if j := slices.Index(m.GetMethods()[:i], method); j >= 0 {
			return fieldErr(mp, "%q duplicates methods[%d]", method, j)
		}
	}
	for i, h := range m.GetHeaders() {
		if err := validateHeaderMatch(fmt.Sprintf("%s.headers[%d]", p, i), h); err != nil {
			return err
		}
	}
	return nil
}

func validateHeaderMatch(p string, h *shoalv1.HeaderMatch) *FieldError {
	if !validHeaderName(h.GetName()) {
		return fieldErr(p+".name", "%q is not a header name (RFC 9110 token, or :pseudo-header)", h.GetName())
	}
	if re, ok := h.GetValue().(*shoalv1.HeaderMatch_Regex); ok {
		if err := validRegex(re.Regex); err != "" {
			return fieldErr(p+".regex", "%s", err)
		}
	}
	return nil
}

func validRegex(re string) string {
	if re == "" {
		return "regex is empty"
	}
	if _, err := regexp.Compile(re); err != nil {
		return fmt.Sprintf("invalid RE2 regex: %v", err)
	}
	// The sidecar compiles it anchored, ^(?:re)$; the anchors add 3
	// instructions, so the limit applies to what it runs.
	if err := regexsize.Check("^(?:" + re + ")$"); err != nil {
		return err.Error()
	}
	return ""
}

func validHeaderName(name string) bool {
	return isToken(strings.TrimPrefix(name, ":"))
}

// isToken reports whether s is an RFC 9110 token (tchar+).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func validateDestinations(p string, ds []*shoalv1.Destination) *FieldError {
	if len(ds) == 0 {
		return fieldErr(p, "at least one destination is required")
	}
	total := 0
	for i, d := range ds {
		dp := fmt.Sprintf("%s[%d]", p, i)
		if err := validateDestination(dp, d); err != nil {
			return err
		}
		total += int(d.GetWeight())
		for j, o := range ds[:i] {
			if o.GetService() == d.GetService() && sameLabels(o.GetSubset(), d.GetSubset()) {
				return fieldErr(dp, "same service and subset as %s[%d]", p, j)
			}
		}
	}
	if len(ds) > 1 && total == 0 {
		return fieldErr(p, "all weights are zero: at least one destination of a split needs weight 1-%d", MaxWeight)
	}
	return nil
}

func validateDestination(p string, d *shoalv1.Destination) *FieldError {
	if !registry.ValidName(d.GetService()) {
		return fieldErr(p+".service", "%q is not a service name (lowercase DNS label of at most 63 characters)", d.GetService())
	}
	for k, v := range d.GetSubset() {
		if !validLabelKey(k) {
			return fieldErr(fmt.Sprintf("%s.subset[%q]", p, k), "label key must be 1-253 characters of [A-Za-z0-9._/-], starting and ending alphanumeric")
		}
		if len(v) > 253 {
			return fieldErr(fmt.Sprintf("%s.subset[%q]", p, k), "label value is longer than 253 characters")
		}
	}
	// Zero means 1 for a single destination; in a split it drains that
	// destination, allowed as long as another one has weight (checked by
	// the caller).
	if w := d.GetWeight(); w < 0 || w > MaxWeight {
		return fieldErr(p+".weight", "%d is outside 1-%d", w, MaxWeight)
	}
	return nil
}

var labelKey = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$`)

func validLabelKey(k string) bool { return len(k) <= 253 && labelKey.MatchString(k) }

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Bounds of Rule.balance_factor: Envoy's hash_balance_factor is at least
// 100 (percent of the average load); the upper bound only catches typos
// (100x the average is unbounded in practice).
const (
	MinBalanceFactor = 100
	MaxBalanceFactor = 10000
)

func validateStrategy(p string, rule *shoalv1.Rule) *FieldError {
	s := rule.GetStrategy()
	if _, ok := shoalv1.Strategy_name[int32(s)]; !ok {
		return fieldErr(p+".strategy", "unknown strategy %d (want ROUND_ROBIN, LEAST_REQUEST, IP_HASH, RING_HASH, MAGLEV, RANDOM or LEAST_LOADED)", int32(s))
	}
	hk := rule.GetHashKey()
	hashing := s == shoalv1.Strategy_STRATEGY_IP_HASH || s == shoalv1.Strategy_STRATEGY_RING_HASH || s == shoalv1.Strategy_STRATEGY_MAGLEV
	switch bf := rule.GetBalanceFactor(); {
	case bf != 0 && !hashing:
		return fieldErr(p+".balance_factor", "bounds consistent hashing only (IP_HASH, RING_HASH, MAGLEV), not %s", StrategyName(s))
	case bf != 0 && bf < MinBalanceFactor:
		return fieldErr(p+".balance_factor", "%d is below %d (percent of the average load; 0 means unbounded)", bf, MinBalanceFactor)
	case bf > MaxBalanceFactor:
		return fieldErr(p+".balance_factor", "%d is above %d", bf, MaxBalanceFactor)
	}
	switch {
	case hk != nil && !hashing:
		return fieldErr(p+".hash_key", "is only used by IP_HASH, RING_HASH and MAGLEV, not %s", StrategyName(s))
	case hk == nil && (s == shoalv1.Strategy_STRATEGY_RING_HASH || s == shoalv1.Strategy_STRATEGY_MAGLEV):
		return fieldErr(p+".hash_key", "%s needs a hash key (source_ip, header or cookie)", StrategyName(s))
	case hk == nil:
		return nil
	}
	switch k := hk.GetKey().(type) {
	case nil:
		return fieldErr(p+".hash_key", "set one of source_ip, header or cookie")
	case *shoalv1.HashKey_SourceIp:
		if !k.SourceIp {
			return fieldErr(p+".hash_key.source_ip", "must be true when set")
		}
	case *shoalv1.HashKey_Header:
		if !validHeaderName(k.Header) {
			return fieldErr(p+".hash_key.header", "%q is not a header name", k.Header)
		}
	case *shoalv1.HashKey_Cookie:
		if !isToken(k.Cookie) {
			return fieldErr(p+".hash_key.cookie", "%q is not a cookie name (RFC 6265 token)", k.Cookie)
		}
	}
	return nil
}

// StrategyName returns the short name of s: ROUND_ROBIN for
// STRATEGY_ROUND_ROBIN, and ROUND_ROBIN for the unspecified default.
func StrategyName(s shoalv1.Strategy) string {
	if s == shoalv1.Strategy_STRATEGY_UNSPECIFIED {
		s = shoalv1.Strategy_STRATEGY_ROUND_ROBIN
	}
	return strings.TrimPrefix(s.String(), "STRATEGY_")
}

func validateDuration(p string, d *durationpb.Duration) *FieldError {
	if d == nil {
		return nil
	}
	if err := d.CheckValid(); err != nil {
		return fieldErr(p, "invalid duration: %v", err)
	}
	switch v := d.AsDuration(); {
	case v < 0:
		return fieldErr(p, "%v is negative", v)
	case v > MaxTimeout:
		return fieldErr(p, "%v is over the %v limit", v, MaxTimeout)
	}
	return nil
}

func validateRetry(p string, rp *shoalv1.RetryPolicy, timeout *durationpb.Duration) *FieldError {
	if rp == nil {
		return nil
	}
	if a := rp.GetAttempts(); a < 0 || a > MaxRetryAttempts {
		return fieldErr(p+".attempts", "%d is outside 0-%d", a, MaxRetryAttempts)
	}
	if err := validateDuration(p+".per_try_timeout", rp.GetPerTryTimeout()); err != nil {
		return err
	}
	if t := timeout.AsDuration(); t > 0 && rp.GetPerTryTimeout().AsDuration() > t {
		return fieldErr(p+".per_try_timeout", "%v is longer than the rule timeout %v", rp.GetPerTryTimeout().AsDuration(), t)
	}
	for i, on := range rp.GetRetryOn() {
		op := fmt.Sprintf("%s.retry_on[%d]", p, i)
		if !slices.Contains(RetryOn, on) {
			return fieldErr(op, "unknown condition %q (want one of %s)", on, strings.Join(RetryOn, ", "))
		}
		if j := slices.Index(rp.GetRetryOn()[:i], on); j >= 0 {
			return fieldErr(op, "%q duplicates retry_on[%d]", on, j)
		}
	}
	for i, c := range rp.GetRetriableStatusCodes() {
		if c < 100 || c > 599 {
			return fieldErr(fmt.Sprintf("%s.retriable_status_codes[%d]", p, i), "%d is not an HTTP status code (100-599)", c)
		}
	}
	if len(rp.GetRetriableStatusCodes()) > 0 && !slices.Contains(rp.GetRetryOn(), "retriable-status-codes") {
		return fieldErr(p+".retriable_status_codes", "only used when retry_on holds retriable-status-codes")
	}
	return nil
}

// CheckTotalSize returns a *FieldError naming r when r, together with the
// other routes (a route of r's name among them is the one r replaces),
// would be over MaxTotalSize.
func CheckTotalSize(r *shoalv1.Route, others []*shoalv1.Route) error {
	total := proto.Size(r)
	for _, o := range others {
		if o.GetName() != r.GetName() {
			total += proto.Size(o)
		}
	}
	if total > MaxTotalSize {
		return &FieldError{Route: r.GetName(), Reason: fmt.Sprintf(
			"all routes together would be %d bytes, over the %d-byte (2 MiB) limit of what the xDS path carries; shrink or delete routes", total, MaxTotalSize)}
	}
	return nil
}

// Bounds of the per-rule proxy settings (issue 17). MaxLimit only catches
// typos: no proxy holds a million requests to one service.
const (
	MaxLimit = 1_000_000
	// MaxSlowStartWindow bounds SlowStart.window.
	MaxSlowStartWindow = time.Hour
	// MaxSlowStartAggression bounds SlowStart.aggression (Envoy takes any
	// positive value; past 100 the ramp is a step).
	MaxSlowStartAggression = 100
	// MaxStallThreshold bounds StallDetection's thresholds.
	MaxStallThreshold = time.Hour
)

func validateCircuitBreakers(p string, cb *shoalv1.CircuitBreakers) *FieldError {
	if cb == nil {
		return nil
	}
	for _, f := range []struct {
		name string
		v    uint32
	}{
		{"max_connections", cb.GetMaxConnections()}, {"max_pending_requests", cb.GetMaxPendingRequests()},
		{"max_requests", cb.GetMaxRequests()}, {"max_retries", cb.GetMaxRetries()},
		{"max_requests_per_endpoint", cb.GetMaxRequestsPerEndpoint()},
	} {
		if f.v > MaxLimit {
			return fieldErr(p+"."+f.name, "%d is over %d (0 means the default)", f.v, MaxLimit)
		}
	}
	if pe, mr := cb.GetMaxRequestsPerEndpoint(), cb.GetMaxRequests(); pe != 0 && mr != 0 && pe > mr {
		return fieldErr(p+".max_requests_per_endpoint", "%d is over max_requests %d", pe, mr)
	}
	return nil
}

func validateSlowStart(p string, s shoalv1.Strategy, ss *shoalv1.SlowStart) *FieldError {
	if ss == nil {
		return nil
	}
	switch s {
	case shoalv1.Strategy_STRATEGY_UNSPECIFIED, shoalv1.Strategy_STRATEGY_ROUND_ROBIN,
		shoalv1.Strategy_STRATEGY_LEAST_REQUEST, shoalv1.Strategy_STRATEGY_LEAST_LOADED:
	default:
		return fieldErr(p, "ramps up ROUND_ROBIN, LEAST_REQUEST and LEAST_LOADED only, not %s", StrategyName(s))
	}
	w := ss.GetWindow()
	if w == nil {
		return fieldErr(p+".window", "is required (how long a new instance ramps up, such as 30s)")
	}
	if err := validateDuration(p+".window", w); err != nil {
		return err
	}
	if d := w.AsDuration(); d <= 0 || d > MaxSlowStartWindow {
		return fieldErr(p+".window", "%v is outside (0, %v]", d, MaxSlowStartWindow)
	}
	if ss.Aggression != nil {
		if a := ss.GetAggression(); !(a > 0 && a <= MaxSlowStartAggression) {
			return fieldErr(p+".aggression", "%v is outside (0, %d] (1 is linear)", a, MaxSlowStartAggression)
		}
	}
	if ss.MinWeightPercent != nil {
		if m := ss.GetMinWeightPercent(); !(m >= 0 && m <= 100) {
			return fieldErr(p+".min_weight_percent", "%v is outside 0-100", m)
		}
	}
	return nil
}

func validateStallDetection(p string, sd *shoalv1.StallDetection) *FieldError {
	if sd == nil {
		return nil
	}
	if sd.GetDisabled() && (sd.GetMinThreshold() != nil || sd.GetMaxThreshold() != nil) {
		return fieldErr(p, "disabled and thresholds are both set; set one")
	}
	for _, f := range []struct {
		name string
		d    *durationpb.Duration
	}{{"min_threshold", sd.GetMinThreshold()}, {"max_threshold", sd.GetMaxThreshold()}} {
		if f.d == nil {
			continue
		}
		if err := f.d.CheckValid(); err != nil {
			return fieldErr(p+"."+f.name, "invalid duration: %v", err)
		}
		if v := f.d.AsDuration(); v <= 0 || v > MaxStallThreshold {
			return fieldErr(p+"."+f.name, "%v is outside (0, %v]", v, MaxStallThreshold)
		}
	}
	if mn, mx := sd.GetMinThreshold(), sd.GetMaxThreshold(); mn != nil && mx != nil && mn.AsDuration() > mx.AsDuration() {
		return fieldErr(p+".max_threshold", "%v is below min_threshold %v", mx.AsDuration(), mn.AsDuration())
	}
	return nil
}
