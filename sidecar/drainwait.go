package sidecar

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/shoal-mesh/shoal/internal/metric"
)

// The drain gate of this sidecar's admin port (issue 18): an app behind
// this sidecar that deregistered itself (e.g. a PM2 worker with
// @shoal-mesh/node's drainGate) asks here to be told when the sidecar's
// routing table no longer sends to it, instead of sleeping for a guessed
// time before it stops accepting:
//
//	POST /drain/wait {"service":"app","instance_id":"app-h-0","address":"127.0.0.1","port":41234,"timeout_ms":2000}
//	200 {"converged":true,"waited_ms":12,"pending":[],"proxies":1}
//
// It waits until no cluster of the installed table has the endpoint
// address:port (the EDS update without the instance has been applied and
// the table swapped), or timeout_ms (capped at maxDrainWait). It answers
// for this sidecar only: a gate across every xDS client of the service
// needs the control plane's ACK tracking.

// maxDrainWait caps timeout_ms, so a caller cannot park a request forever.
const maxDrainWait = time.Minute

// drainWaitRequest is the body of POST /drain/wait.
type drainWaitRequest struct {
	Service    string `json:"service"`
	InstanceID string `json:"instance_id"`
	Address    string `json:"address"`
	Port       int    `json:"port"`
	TimeoutMS  int64  `json:"timeout_ms"`
}

// drainWaitAnswer is the answer of POST /drain/wait.
type drainWaitAnswer struct {
	Converged bool     `json:"converged"`
	WaitedMS  int64    `json:"waited_ms"`
	Pending   []string `json:"pending"`
	Proxies   int      `json:"proxies"`
}

// tableWatch tells waiters that a new routing table was installed: the
// channel is closed and replaced on every install. Safe for concurrent use.
type tableWatch struct {
	mu sync.Mutex // guards ch
	ch chan struct{}
}

func (w *tableWatch) changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

func (w *tableWatch) notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
	}
	w.ch = make(chan struct{})
}

// drainMetrics are the drain gate's metrics.
type drainMetrics struct {
	wait     *metric.Histogram
	timeouts *metric.Counter
}

func newDrainMetrics(reg metric.Registerer) (*drainMetrics, error) {
	m := &drainMetrics{
		wait: metric.NewHistogram(metric.HistogramOpts{
			Name:    "shoal_sidecar_drain_wait_seconds",
			Help:    "How long POST /drain/wait waited until the routing table no longer had the instance (or the bound).",
			Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}),
		timeouts: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_sidecar_drain_wait_timeouts_total",
			Help: "POST /drain/wait calls that reached their bound with the instance still in the routing table.",
		}),
	}
	for _, c := range []metric.Collector{m.wait, m.timeouts} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("sidecar: drain metrics: %w", err)
		}
	}
	return m, nil
}

func (r *drainWaitRequest) validate() error {
	switch {
	case r.Service == "":
		return errors.New("service is required")
	case r.Address == "":
		return errors.New("address is required (the registered address of the instance)")
	case r.Port < 1 || r.Port > 65535:
		return fmt.Errorf("port %d is outside 1-65535", r.Port)
	case r.TimeoutMS < 0:
		return fmt.Errorf("timeout_ms %d is negative", r.TimeoutMS)
	}
	return nil
}

// drainWait serves POST /drain/wait.
func (p *Proxy) drainWait(w http.ResponseWriter, r *http.Request) {
	var req drainWaitRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		http.Error(w, "drain/wait: body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := req.validate(); err != nil {
		http.Error(w, "drain/wait: "+err.Error(), http.StatusBadRequest)
		return
	}
	endpoint := net.JoinHostPort(req.Address, strconv.Itoa(req.Port))
	timeout := min(time.Duration(req.TimeoutMS)*time.Millisecond, maxDrainWait)
	start := time.Now()
	converged := p.waitEndpointGone(r, endpoint, timeout)
	waited := time.Since(start)
	p.drainM.wait.Observe(waited.Seconds())
	ans := drainWaitAnswer{Converged: converged, WaitedMS: waited.Milliseconds(), Pending: []string{}, Proxies: 1}
	if !converged {
		p.drainM.timeouts.Inc()
		ans.Pending = append(ans.Pending, p.nodeID())
		p.log.Warn("drain gate: instance still routed at the bound", "service", req.Service, "instance", req.InstanceID, "endpoint", endpoint, "waited", waited.Round(time.Millisecond))
	} else {
		p.log.Info("drain gate: instance out of the routing table", "service", req.Service, "instance", req.InstanceID, "endpoint", endpoint, "waited", waited.Round(time.Millisecond))
	}
	writeJSON(w, ans)
}

// waitEndpointGone waits until no cluster routes to endpoint, the timeout,
// or the caller going away; it reports whether the endpoint is gone.
func (p *Proxy) waitEndpointGone(r *http.Request, endpoint string, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		changed := p.tables.changed() // before the check, so no install is missed
		if !p.routesTo(endpoint) {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return !p.routesTo(endpoint)
		case <-r.Context().Done():
			return false
		}
	}
}

// routesTo reports whether any cluster of the installed table has endpoint.
func (p *Proxy) routesTo(endpoint string) bool {
	for _, c := range p.proxy.Clusters() {
		for _, e := range c.Endpoints {
			if e.Address == endpoint {
				return true
			}
		}
	}
	return false
}

// nodeID is this proxy's xDS node id.
func (p *Proxy) nodeID() string {
	if p.cfg.Mode == ModeGateway {
		return "gateway"
	}
	return p.cfg.InstanceID
}
