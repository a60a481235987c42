package route

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/roundrobin"
)

// Protocol is how the proxy talks to a cluster's endpoints.
type Protocol uint8

// Cluster protocols. The zero value is HTTP1.
const (
	// HTTP1 is HTTP/1.1 with keep-alive connection pools.
	HTTP1 Protocol = iota
	// HTTP2 is HTTP/2 cleartext with prior knowledge (h2c), used for gRPC.
	HTTP2
	// TCP proxies raw bytes; only fixed-cluster listeners use TCP clusters.
	TCP
)

// String returns "http1", "h2c" or "tcp".
func (p Protocol) String() string {
	switch p {
	case HTTP1:
		return "http1"
	case HTTP2:
		return "h2c"
	case TCP:
		return "tcp"
	}
	return fmt.Sprintf("protocol(%d)", uint8(p))
}

// Defaults for zero ClusterConfig and OutlierDetection fields (Envoy's
// defaults where Envoy has one).
const (
	DefaultMaxRequests    = 1024
	DefaultMaxConnections = 1024
	DefaultMaxPending     = 1024
	// DefaultMaxRetries is no limit (the control plane's default too,
	// as Istio's): a request's retries are bounded by its route policy.
	DefaultMaxRetries         = math.MaxUint32
	DefaultConnectTimeout     = 5 * time.Second
	DefaultConsecutive5xx     = 5
	DefaultConsecutiveConnect = 5
	DefaultBaseEjectionTime   = 30 * time.Second
	DefaultMaxEjectionTime    = 300 * time.Second
	DefaultMaxEjectionPercent = 10
	// MinMaxRequestsPerEndpoint is the floor of the default per-endpoint
	// limit, max(MinMaxRequestsPerEndpoint, MaxRequests / endpoints).
	MinMaxRequestsPerEndpoint = 64
	DefaultStallMin           = time.Second
	DefaultStallMax           = 2 * time.Second
	DefaultStallMultiplier    = 8
	DefaultStallProbeInterval = 5 * time.Second
)

// SlowStart ramps a new endpoint's share of traffic up over Window, as
// Envoy's slow_start_config: an endpoint that joins a cluster (not one
// present when the proxy first learned the cluster) takes
// max(MinWeightPercent/100, (elapsed/Window)^(1/Aggression)) of its
// share. The zero value (Window 0) turns it off.
type SlowStart struct {
	Window time.Duration
	// Aggression shapes the ramp; zero means 1 (linear).
	Aggression float64
	// MinWeightPercent is the floor of the share; zero means 10 (Envoy's
	// default) and a negative value 0 (an explicit 0 in xDS).
	MinWeightPercent float64
}

// Factor is the share of its weight an endpoint takes elapsed after it
// joined: 1 once Window has passed.
func (s *SlowStart) Factor(elapsed time.Duration) float64 {
	if s.Window <= 0 || elapsed >= s.Window {
		return 1
	}
	agg, floor := s.Aggression, s.MinWeightPercent
	if agg <= 0 {
		agg = 1
	}
	switch {
	case floor == 0:
		floor = 10
	case floor < 0:
		floor = 0
	}
	f := math.Pow(max(float64(elapsed)/float64(s.Window), 0), 1/agg)
	return min(1, max(f, floor/100))
}

// StallDetection configures stuck-endpoint detection: an endpoint with
// requests in flight that answered none of them for the stall threshold
// (Multiplier times its recent peak latency, within Min..Max) is marked
// stalled and gets no new request until one completes on it; it is
// probed with one idempotent request every ProbeInterval. Zero fields
// take the documented defaults.
type StallDetection struct {
	// Disabled turns stall detection off for the cluster.
	Disabled bool
	// Min and Max bound the threshold. Zero means DefaultStallMin and
	// DefaultStallMax.
	Min, Max time.Duration
	// Multiplier scales the recent peak latency. Zero means
	// DefaultStallMultiplier.
	Multiplier int
	// ProbeInterval is how long a stalled endpoint gets no request before
	// one idempotent request may probe it. Zero means
	// DefaultStallProbeInterval.
	ProbeInterval time.Duration
}

// WithDefaults returns s with zero fields replaced by their defaults.
func (s StallDetection) WithDefaults() StallDetection {
	if s.Min <= 0 {
		s.Min = DefaultStallMin
	}
	if s.Max <= 0 {
		s.Max = max(DefaultStallMax, s.Min)
	}
	if s.Max < s.Min {
		s.Max = s.Min
	}
	if s.Multiplier <= 0 {
		s.Multiplier = DefaultStallMultiplier
	}
	if s.ProbeInterval <= 0 {
		s.ProbeInterval = DefaultStallProbeInterval
	}
	return s
}

// Endpoint is one upstream host of a cluster.
type Endpoint struct {
	// Address is "host:port".
	Address string
	// Weight is the load-balancing weight; zero means 1.
	Weight uint32
	// Healthy reports whether the endpoint may be picked (EDS health and
	// gossip); unhealthy endpoints are picked only in panic mode.
	Healthy bool
	// Metadata is opaque to routing (e.g. the instance's version label).
	Metadata any
	// ServerID, when set, makes the proxy originate mTLS to the endpoint
	// and require this SPIFFE ID in its certificate (the destination
	// service's identity); empty means plain TCP.
	ServerID string
	// Index is the endpoint's position in its cluster's Endpoints, set by
	// New; readers use it to find per-endpoint state in parallel slices.
	Index int
}

// OutlierDetection configures passive outlier detection (Envoy
// outlier_detection). Zero fields take the documented defaults.
type OutlierDetection struct {
	// Disabled turns outlier detection off for the cluster.
	Disabled bool
	// Consecutive5xx ejects an endpoint after this many consecutive 5xx
	// responses. Zero means DefaultConsecutive5xx.
	Consecutive5xx int
	// ConsecutiveConnectFailures ejects an endpoint after this many
	// consecutive connect failures or resets (Envoy's gateway failures).
	// Zero means DefaultConsecutiveConnect.
	ConsecutiveConnectFailures int
	// BaseEjectionTime is multiplied by the number of times the endpoint has
	// been ejected. Zero means DefaultBaseEjectionTime.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps an ejection. Zero means DefaultMaxEjectionTime.
	MaxEjectionTime time.Duration
	// MaxEjectionPercent caps the share of endpoints ejected at once; one
	// endpoint may always be ejected (as in Envoy). Zero means
	// DefaultMaxEjectionPercent.
	MaxEjectionPercent int
}

// WithDefaults returns o with zero fields replaced by their defaults.
func (o OutlierDetection) WithDefaults() OutlierDetection {
	if o.Consecutive5xx == 0 {
		o.Consecutive5xx = DefaultConsecutive5xx
	}
	if o.ConsecutiveConnectFailures == 0 {
		o.ConsecutiveConnectFailures = DefaultConsecutiveConnect
	}
	if o.BaseEjectionTime == 0 {
		o.BaseEjectionTime = DefaultBaseEjectionTime
	}
	if o.MaxEjectionTime == 0 {
		o.MaxEjectionTime = DefaultMaxEjectionTime
	}
	if o.MaxEjectionPercent == 0 {
		o.MaxEjectionPercent = DefaultMaxEjectionPercent
	}
	return o
}

// ClusterConfig describes a cluster; New compiles it into a *Cluster.
type ClusterConfig struct {
	// Name is the cluster name routes refer to ("orders", "orders/ring_hash").
	Name string
	// Protocol is the upstream protocol; the zero value is HTTP1.
	Protocol Protocol
	// LB builds the picker. Nil means round robin.
	LB lb.Builder
	// LBConfig configures LB; the zero value is valid (no panic mode).
	LBConfig lb.Config
	// Endpoints are the hosts, in EDS order.
	Endpoints []Endpoint
	// Outlier configures passive outlier detection.
	Outlier OutlierDetection
	// MaxRequests is the circuit breaker's limit on concurrent requests to
	// the cluster. Zero means DefaultMaxRequests.
	MaxRequests int
	// MaxConnections is the circuit breaker's limit on open upstream
	// HTTP/1.1 and TCP connections of the cluster (pooled ones included;
	// the few multiplexed HTTP/2 connections are not counted). Zero means
	// DefaultMaxConnections.
	MaxConnections int
	// MaxPendingRequests is Envoy's limit on requests queued for a
	// connection. The proxy queues none (it dials at once), so it is only
	// reported. Zero means DefaultMaxPending.
	MaxPendingRequests int
	// MaxRetries is the circuit breaker's limit on retries in flight under
	// a route retry policy (as Envoy's; the connect-failure retry every
	// request gets is not counted). Zero means DefaultMaxRetries.
	MaxRetries int
	// MaxRequestsPerEndpoint limits concurrent requests to one endpoint,
	// so that one stuck endpoint cannot hold the cluster's whole budget:
	// an endpoint at its limit is skipped, and a request is refused (503,
	// upstream overflow) only when every endpoint is. Zero means
	// max(MinMaxRequestsPerEndpoint, MaxRequests / endpoints), at most
	// MaxRequests.
	MaxRequestsPerEndpoint int
	// Stall configures stuck-endpoint detection.
	Stall StallDetection
	// SlowStart ramps new endpoints up (round robin, least request and
	// random; the hashes ignore it). The zero value is off.
	SlowStart SlowStart
	// ConnectTimeout bounds a TCP connect. Zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration
}

// Cluster is a compiled, immutable cluster. Safe for concurrent use.
type Cluster struct {
	// ClusterConfig is the cluster's configuration with defaults filled in
	// (Outlier, MaxRequests, MaxConnections, MaxPendingRequests,
	// MaxRetries, MaxRequestsPerEndpoint, Stall, ConnectTimeout, LB). Its Endpoints slice holds
	// the compiled endpoints with Index set; it must not be modified.
	ClusterConfig
	// Index is the cluster's position in Table.Clusters.
	Index int

	lbEndpoints []*lb.Endpoint
	picker      lb.Picker
	answers     bool // the picker reads answer times (lb.NeedsAnswers)
}

// TracksAnswers reports whether the proxy records, for the cluster's
// picker, when each request was sent and when its response head arrived
// (lb.Endpoint.Sent and Answered).
func (c *Cluster) TracksAnswers() bool { return c.answers }

// Pick picks an endpoint with the cluster's picker; see lb.Picker. It does
// not allocate. Use EndpointOf to get the route Endpoint (and its Index).
func (c *Cluster) Pick(info *lb.PickInfo) (*lb.Endpoint, error) {
	return c.picker.Pick(info)
}

// PickerWeights returns, for pickers whose weights change at run time
// (least loaded's, from load reports), the current weight of each eligible
// endpoint by address; nil for the others.
func (c *Cluster) PickerWeights() map[string]uint32 {
	if w, ok := c.picker.(interface{ WeightsByAddress() map[string]uint32 }); ok {
		return w.WeightsByAddress()
	}
	return nil
}

// LBEndpoints returns the lb endpoints, parallel to Endpoints. The slice
// must not be modified.
func (c *Cluster) LBEndpoints() []*lb.Endpoint { return c.lbEndpoints }

// EndpointOf returns the route Endpoint an lb endpoint of a Cluster was
// built from, or nil if e was not built by this package.
func EndpointOf(e *lb.Endpoint) *Endpoint {
	re, _ := e.Metadata.(*Endpoint)
	return re
}

func compileCluster(cc ClusterConfig, index int, loads *Loads) (*Cluster, error) {
	if cc.Name == "" {
		return nil, fmt.Errorf("route: cluster %d has no name", index)
	}
	if cc.LB == nil {
		cc.LB = roundrobin.Builder{}
	}
	if err := cc.LBConfig.Validate(); err != nil {
		return nil, fmt.Errorf("route: cluster %q: %w", cc.Name, err)
	}
	if cc.MaxRequests == 0 {
		cc.MaxRequests = DefaultMaxRequests
	}
	if cc.MaxConnections <= 0 {
		cc.MaxConnections = DefaultMaxConnections
	}
	if cc.MaxPendingRequests <= 0 {
		cc.MaxPendingRequests = DefaultMaxPending
	}
	if cc.MaxRetries <= 0 {
		cc.MaxRetries = DefaultMaxRetries
	}
	if cc.MaxRequestsPerEndpoint <= 0 {
		cc.MaxRequestsPerEndpoint = min(cc.MaxRequests, max(MinMaxRequestsPerEndpoint, cc.MaxRequests/max(1, len(cc.Endpoints))))
	}
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = DefaultConnectTimeout
	}
	cc.Outlier = cc.Outlier.WithDefaults()
	cc.Stall = cc.Stall.WithDefaults()
	eps := make([]Endpoint, len(cc.Endpoints))
	lbs := make([]*lb.Endpoint, len(cc.Endpoints))
	for i, e := range cc.Endpoints {
		if e.Address == "" {
			return nil, fmt.Errorf("route: cluster %q: endpoint %d has no address", cc.Name, i)
		}
		e.Index = i
		eps[i] = e
		lbs[i] = &lb.Endpoint{Address: e.Address, Weight: e.Weight, Healthy: e.Healthy, Metadata: &eps[i]}
	}
	cc.Endpoints = eps
	loads.store(cc.Name).Attach(lbs)
	return &Cluster{ClusterConfig: cc, Index: index, lbEndpoints: lbs, picker: cc.LB.Build(lbs, cc.LBConfig), answers: lb.NeedsAnswers(cc.LB)}, nil
}

// Loads keeps one lb.LoadStore per cluster name so that in-flight counts
// (least request, bounded load) survive table rebuilds. Pass the same
// *Loads to every New of one proxy (see Config.Loads). Safe for concurrent
// use; only New touches it.
type Loads struct {
	// mu guards m.
	mu sync.Mutex
	m  map[string]*lb.LoadStore
}

// NewLoads returns an empty Loads.
func NewLoads() *Loads { return &Loads{m: make(map[string]*lb.LoadStore)} }

// store returns the LoadStore of a cluster; a nil Loads yields a fresh one.
func (l *Loads) store(cluster string) *lb.LoadStore {
	if l == nil {
		return lb.NewLoadStore()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.m[cluster]
	if !ok {
		s = lb.NewLoadStore()
		l.m[cluster] = s
	}
	return s
}
