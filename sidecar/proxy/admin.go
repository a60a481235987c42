package proxy

import (
	"time"
)

// ClusterStatus is a snapshot of one cluster for the admin /clusters page.
type ClusterStatus struct {
	Name      string           `json:"name"`
	Protocol  string           `json:"protocol"`
	LB        string           `json:"lb"`
	InFlight  int64            `json:"in_flight"`
	Ejected   int              `json:"ejected"`
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
	// IdleConns is the number of pooled HTTP/1.1 connections.
	IdleConns int `json:"idle_conns"`
}

// Clusters returns a snapshot of the current table's clusters in table
// order. Safe for concurrent use; it does not block traffic.
func (p *Proxy) Clusters() []ClusterStatus {
	b := p.bound.Load()
	out := make([]ClusterStatus, 0, len(b.table.Clusters))
	now := time.Now()
	for i, cl := range b.table.Clusters {
		cs := b.clusters[i]
		st := ClusterStatus{Name: cl.Name, Protocol: cl.Protocol.String(), LB: cl.LB.Name(), InFlight: cs.inflight.Load(), Ejected: int(cs.ejected.Load())}
		for j, e := range cl.LBEndpoints() {
			h := b.hosts[i][j]
			es := EndpointStatus{Address: e.Address, Weight: e.EffectiveWeight(), Healthy: e.Healthy, InFlight: e.InFlight(), TimesEjected: int(h.timesEjected.Load())}
			if h.isEjected.Load() {
				if until := time.Unix(0, h.ejectedUntil.Load()); until.After(now) {
					es.Ejected, es.EjectedUntil = true, until
				}
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
