package lb

import "errors"

// Registered strategy names. They match the names used in routes and the
// suffix of xDS cluster names ("<service>/<strategy>").
const (
	RoundRobin   = "round_robin"
	LeastRequest = "least_request"
	RingHash     = "ring_hash"
	Maglev       = "maglev"
	Random       = "random"
	LeastLoaded  = "least_loaded"
)

// ErrNoEndpoint is returned by Pick when no endpoint can be picked: the set
// is empty, or nothing is healthy and panic mode is disabled.
var ErrNoEndpoint = errors.New("lb: no endpoint available")

// Picker chooses an endpoint for one request.
//
// Pickers are immutable snapshots of an endpoint set (grpc-go style): the
// owner builds a new one when the set changes and swaps it in with an atomic
// pointer. Pick is safe for concurrent use, never blocks, and does not
// allocate. The returned endpoint is shared and must not be modified; the
// caller brackets the request with its Begin and End.
type Picker interface {
	// Pick returns an endpoint or ErrNoEndpoint. info may be nil (no hash,
	// no exclusions); Pick does not retain or modify it.
	Pick(info *PickInfo) (*Endpoint, error)
}

// Builder builds pickers of one strategy.
//
// Build is safe for concurrent use. It does not retain or modify the eps
// slice but keeps the *Endpoint values. cfg should have passed
// Config.Validate; zero fields take their documented defaults.
type Builder interface {
	// Name returns the registered strategy name, e.g. RoundRobin.
	Name() string
	// Build returns a picker over eps. It never returns nil; a picker over
	// no eligible endpoints returns ErrNoEndpoint.
	Build(eps []*Endpoint, cfg Config) Picker
}

// MaxExcluded is how many previously tried addresses a PickInfo remembers.
const MaxExcluded = 4

// PickInfo carries per-request input to Pick. The zero value means "no hash
// key, nothing excluded". A PickInfo is owned by one request and is not safe
// for concurrent use; it is small enough to live on the stack.
type PickInfo struct {
	// Hash is the request's hash key (source IP, header or cookie value),
	// computed with HashString or HashBytes. Read only when HasHash is set.
	Hash uint64
	// HasHash reports whether the request has a hash key. Hash pickers fall
	// back to a random (weighted) pick without one.
	HasHash bool

	excluded  [MaxExcluded]string
	nExcluded int
}

// SetHash sets Hash and HasHash.
func (p *PickInfo) SetHash(h uint64) {
	p.Hash, p.HasHash = h, true
}

// Exclude asks pickers to avoid addr, typically the host a previous attempt
// of this request failed on ("never the same host twice" for retries). It
// remembers the MaxExcluded most recent addresses.
//
// Exclusion is a preference, as Envoy's previous_hosts retry predicate: if
// every eligible endpoint is excluded, Pick returns an excluded one rather
// than failing. Callers that must not retry the same host check
// IsExcluded on the result.
func (p *PickInfo) Exclude(addr string) {
	p.excluded[p.nExcluded%MaxExcluded] = addr
	p.nExcluded++
}

// IsExcluded reports whether addr was excluded. It is nil-safe.
func (p *PickInfo) IsExcluded(addr string) bool {
	if p == nil {
		return false
	}
	for i := range min(p.nExcluded, MaxExcluded) {
		if p.excluded[i] == addr {
			return true
		}
	}
	return false
}

// HasExclusions reports whether any address is excluded. It is nil-safe.
func (p *PickInfo) HasExclusions() bool {
	return p != nil && p.nExcluded > 0
}
