package proxy

import (
	"cmp"
	"time"
)

// ClusterStatus is a snapshot of one cluster for the admin /clusters page.
type ClusterStatus struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	LB       string `json:"lb"`
	InFlight int64  `json:"in_flight"`
	// MaxRequests is the cluster's in-flight limit (circuit breaker) and
	// MaxRequestsPerEndpoint each endpoint's.
	MaxRequests            int `json:"max_requests"`
	MaxRequestsPerEndpoint int `json:"max_requests_per_endpoint"`
	// MaxConnections bounds Connections, the open upstream HTTP/1.1 and
	// TCP connections (pooled included); MaxRetries bounds
	// RetriesInFlight, the requests retrying under a route retry policy.
	// MaxPendingRequests is reported only: the proxy queues no request.
	MaxConnections     int   `json:"max_connections"`
	Connections        int64 `json:"connections"`
	MaxPendingRequests int   `json:"max_pending_requests"`
	MaxRetries         int   `json:"max_retries"`
	RetriesInFlight    int64 `json:"retries_in_flight"`
	// SlowStart is the cluster's ramp for new endpoints; absent when off.
	SlowStart *SlowStartStatus `json:"slow_start,omitempty"`
	// StallDetection is the cluster's stuck-endpoint detection.
	StallDetection StallStatus `json:"stall_detection"`
	Ejected        int         `json:"ejected"`
	// Stalled counts endpoints currently marked stalled.
	Stalled   int              `json:"stalled"`
	Endpoints []EndpointStatus `json:"endpoints"`
}

// EndpointStatus is a snapshot of one endpoint.
type EndpointStatus struct {
	Address string `json:"address"`
	Weight  uint32 `json:"weight"`
	// Healthy is the configured (EDS / gossip) health.
	Healthy bool `json:"healthy"`
	// Ejected reports a current outlier ejection, until EjectedUntil.
	Ejected      bool      `json:"ejected"`
	EjectedUntil time.Time `json:"ejected_until,omitzero"`
	TimesEjected int       `json:"times_ejected"`
	// InFlight counts requests plus pending connects (lb.Load).
	InFlight int64 `json:"in_flight"`
	// Attempts counts this proxy's attempts in flight on the endpoint,
	// which MaxRequestsPerEndpoint limits.
	Attempts int64 `json:"attempts_in_flight"`
	// Stalled reports that the endpoint held requests and answered none
	// for StallThreshold: it gets no new request until one completes.
	Stalled        bool          `json:"stalled"`
	StallThreshold time.Duration `json:"stall_threshold_ns"`
	// Unanswered reports, for least loaded, that the endpoint owes two or
	// more answers and sent no response head for AnswerLimit (a few of its
	// usual times to first byte): it loses every pick, and GETs waiting
	// on it go elsewhere (hedged). Both absent for other strategies.
	Unanswered  bool          `json:"unanswered,omitempty"`
	AnswerLimit time.Duration `json:"answer_limit_ns,omitempty"`
	// PickerWeight is the weight least loaded picks by now, from the load
	// reports (the heaviest endpoint MaxWeight, none under a quarter of
	// it); absent for other strategies.
	PickerWeight uint32 `json:"picker_weight,omitempty"`
	// SlowStart is the share of its weight a warming endpoint takes
	// (route.SlowStart); absent once warmed up.
	SlowStart float64 `json:"slow_start,omitempty"`
	// LoadReport is the endpoint's last ORCA load report (utilization and
	// requests per second it reported on a response, for least_loaded),
	// and ReportedAt when it came; absent without one.
	LoadReport *LoadReportStatus `json:"load_report,omitempty"`
	// IdleConns is the number of pooled HTTP/1.1 connections.
	IdleConns int `json:"idle_conns"`
}

// SlowStartStatus is a cluster's slow start (route.SlowStart).
type SlowStartStatus struct {
	Window           time.Duration `json:"window_ns"`
	Aggression       float64       `json:"aggression"`
	MinWeightPercent float64       `json:"min_weight_percent"`
}

// StallStatus is a cluster's stall detection (route.StallDetection).
type StallStatus struct {
	Disabled bool          `json:"disabled"`
	Min      time.Duration `json:"min_threshold_ns"`
	Max      time.Duration `json:"max_threshold_ns"`
}

// LoadReportStatus is an endpoint's last ORCA load report.
type LoadReportStatus struct {
	Utilization float64   `json:"utilization"`
	RPS         float64   `json:"rps"`
	EPS         float64   `json:"eps,omitempty"`
	ReportedAt  time.Time `json:"reported_at"`
}

// Clusters returns a snapshot of the current table's clusters in table
// order. Safe for concurrent use; it does not block traffic.
func (p *Proxy) Clusters() []ClusterStatus {
	b := p.bound.Load()
	out := make([]ClusterStatus, 0, len(b.table.Clusters))
	now := time.Now()
	for i, cl := range b.table.Clusters {
		cs := b.clusters[i]
		st := ClusterStatus{Name: cl.Name, Protocol: cl.Protocol.String(), LB: cl.LB.Name(), InFlight: cs.inflight.Load(),
			MaxRequests: cl.MaxRequests, MaxRequestsPerEndpoint: cl.MaxRequestsPerEndpoint, Ejected: int(cs.ejected.Load()), Stalled: int(cs.stalled.Load()),
			MaxConnections: cl.MaxConnections, Connections: cs.conns.Load(), MaxPendingRequests: cl.MaxPendingRequests,
			MaxRetries: cl.MaxRetries, RetriesInFlight: cs.retrying.Load(),
			StallDetection: StallStatus{Disabled: cl.Stall.Disabled, Min: cl.Stall.Min, Max: cl.Stall.Max}}
		if ss := cl.SlowStart; ss.Window > 0 {
			st.SlowStart = &SlowStartStatus{Window: ss.Window, Aggression: cmp.Or(ss.Aggression, 1), MinWeightPercent: max(cmp.Or(ss.MinWeightPercent, 10), 0)}
		}
		weights := cl.PickerWeights()
		for j, e := range cl.LBEndpoints() {
			h := b.hosts[i][j]
			es := EndpointStatus{Address: e.Address, Weight: e.EffectiveWeight(), Healthy: e.Healthy, InFlight: e.InFlight(), TimesEjected: int(h.timesEjected.Load()),
				Attempts: h.load.inProgress.Load(), Stalled: h.stalled.Load(), StallThreshold: h.stallThreshold(&cl.Stall)}
			if cl.TracksAnswers() {
				es.Unanswered, es.AnswerLimit = e.Load.Unanswered(now.UnixNano()), e.Load.AnswerLimit()
			}
			es.PickerWeight = weights[e.Address]
			if joined := h.joined.Load(); joined != 0 {
				if f := cl.SlowStart.Factor(now.Sub(time.Unix(0, joined))); f < 1 {
					es.SlowStart = f
				}
			}
			if h.isEjected.Load() {
				if until := time.Unix(0, h.ejectedUntil.Load()); until.After(now) {
					es.Ejected, es.EjectedUntil = true, until
				}
			}
			if r, at := e.LastReport(); !at.IsZero() {
				es.LoadReport = &LoadReportStatus{Utilization: r.ApplicationUtilization, RPS: r.QPS, EPS: r.EPS, ReportedAt: at}
			}
			h.pool.mu.Lock()
			es.IdleConns = len(h.pool.idle)
			h.pool.mu.Unlock()
			st.Endpoints = append(st.Endpoints, es)
		}
		out = append(out, st)
	}
	return out
}
