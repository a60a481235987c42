package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-mesh/shoal/internal/metric"
	drainv1 "github.com/shoal-mesh/shoal/proto/shoal/drain/v1"
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
// It first asks the control plane (DrainService.WaitRemoved on its xDS
// port) to wait until every xDS client that was sent the service's
// endpoints has ACKed endpoints without address:port, then waits until
// this sidecar's installed table has no such endpoint either (the ACK may
// precede the table swap), all within timeout_ms (capped at maxDrainWait).
// A control plane that cannot be asked leaves the local check alone
// ("control_plane_error" says why). The sidecar's own SIGTERM drain uses
// the same control plane wait for the instance it registered.

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
	// ControlPlaneError is set when the control plane could not be asked.
	ControlPlaneError string `json:"control_plane_error,omitempty"`
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
			Help:    "How long a drain waited until every proxy had dropped the instance (or the bound): POST /drain/wait and the sidecar's own SIGTERM drain.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}),
		timeouts: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_sidecar_drain_wait_timeouts_total",
			Help: "Drain waits that reached their bound with some proxy still holding the instance.",
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
	ans := drainWaitAnswer{Pending: []string{}, Proxies: 1}
	cpConverged := true
	cp, err := p.controlPlaneWait(r.Context(), req.Service, req.Address, req.Port, timeout)
	if err != nil {
		ans.ControlPlaneError = err.Error()
		p.log.Warn("drain gate: cannot ask the control plane; checking this sidecar only", "err", err)
	} else {
		cpConverged, ans.Proxies = cp.GetConverged(), max(int(cp.GetClients()), 1)
		ans.Pending = append(ans.Pending, cp.GetPending()...)
	}
	local := p.waitEndpointGone(r, endpoint, max(timeout-time.Since(start), 0))
	if !local && !slices.Contains(ans.Pending, p.nodeID()) {
		ans.Pending = append(ans.Pending, p.nodeID())
	}
	ans.Converged = cpConverged && local
	waited := time.Since(start)
	ans.WaitedMS = waited.Milliseconds()
	p.drainM.wait.Observe(waited.Seconds())
	if !ans.Converged {
		p.drainM.timeouts.Inc()
		p.log.Warn("drain gate: instance still routed at the bound", "service", req.Service, "instance", req.InstanceID, "endpoint", endpoint, "waited", waited.Round(time.Millisecond), "pending", ans.Pending)
	} else {
		p.log.Info("drain gate: every proxy dropped the instance", "service", req.Service, "instance", req.InstanceID, "endpoint", endpoint, "proxies", ans.Proxies, "waited", waited.Round(time.Millisecond))
	}
	writeJSON(w, ans)
}

// controlPlaneWait asks the control plane's DrainService, on its xDS port
// (--xds, then each fallback), to wait until no xDS client holds
// address:port of service, for at most timeout.
func (p *Proxy) controlPlaneWait(ctx context.Context, service, address string, port int, timeout time.Duration) (*drainv1.WaitRemovedResponse, error) {
	req := &drainv1.WaitRemovedRequest{Service: service, Address: address, Port: uint32(port), Timeout: durationpb.New(timeout)}
	var errs []error
	for _, target := range append([]string{p.cfg.XDS}, p.cfg.XDSFallback...) {
		cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(p.controlPlaneCreds()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// The answer may take the whole bound; the call gets a little more.
		cctx, cancel := context.WithTimeout(ctx, timeout+2*time.Second)
		resp, err := drainv1.NewDrainServiceClient(cc).WaitRemoved(cctx, req)
		cancel()
		cc.Close()
		if err == nil {
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", target, err))
	}
	return nil, fmt.Errorf("sidecar: drain gate: %w", errors.Join(errs...))
}

// waitEndpointGone waits until no cluster routes to endpoint, the timeout,
// or the caller going away; it reports whether the endpoint is gone.
func (p *Proxy) waitEndpointGone(r *http.Request, endpoint string, timeout time.Duration) bool {
	if !p.routesTo(endpoint) {
		return true
	}
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

// waitDeregistered waits, after the sidecar deregistered its instance,
// until every xDS client has ACKed endpoints without it, for at most
// DrainTimeout. It reports false when the control plane could not be asked
// (the caller then falls back to DrainDelay).
func (p *Proxy) waitDeregistered() bool {
	start := time.Now()
	resp, err := p.controlPlaneWait(context.Background(), p.self.Service, p.self.Address, p.self.Port, p.cfg.DrainTimeout)
	waited := time.Since(start)
	if err != nil {
		p.log.Warn("drain gate unavailable; waiting the drain delay instead", "err", err)
		return false
	}
	p.drainM.wait.Observe(waited.Seconds())
	if !resp.GetConverged() {
		p.drainM.timeouts.Inc()
		p.log.Warn("drain gate: proxies had not ACKed the removal at the bound", "waited", waited.Round(time.Millisecond), "pending", resp.GetPending(), "bound", p.cfg.DrainTimeout)
	} else {
		p.log.Info("drain gate: every proxy ACKed the removal", "waited", waited.Round(time.Millisecond), "proxies", resp.GetClients())
	}
	return true
}
