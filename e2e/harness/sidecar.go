package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// SidecarOptions configure StartSidecar and StartGateway. Zero values are
// the defaults of a mesh sidecar next to one app.
type SidecarOptions struct {
	// CP is the control plane: xDS, etcd (registration) and gossip seed.
	// Required.
	CP *ControlPlane
	// Service and InstanceID name the fronted app (sidecars only).
	Service, InstanceID string
	// AppPort is the local app's port (sidecars only; a client sidecar
	// that fronts nothing may pass any free port with NoRegister).
	AppPort int
	// NoRegister leaves registration to the app (or makes a pure client).
	NoRegister bool
	// NoEtcd gives no --etcd: a sidecar with an identity registers through
	// the control plane.
	NoEtcd bool
	// Outbound opens the Host-routed outbound listener on a free port.
	Outbound bool
	// Upstreams opens one local port per service name (--upstream).
	Upstreams []string
	// Metadata is registered with the instance, as k=v,k=v.
	Metadata string
	// HealthPath is the app's HTTP health path; empty means /healthz.
	HealthPath string
	// StateDir keeps the last good config; empty means a new temp dir.
	StateDir string
	// NoGossip leaves gossip off.
	NoGossip bool
	// GossipJoin overrides the seeds (default: the control plane's gossip
	// address); GossipLabel and GossipKey are passed through when set.
	GossipJoin, GossipLabel, GossipKey string
	// AdminBeyondLoopback binds the admin listener to 0.0.0.0 (Admin keeps
	// the 127.0.0.1 address, which reaches it as a loopback peer).
	AdminBeyondLoopback bool
	// Extra flags are appended last.
	Extra []string
}

// Sidecar is a running `shoal sidecar` or `shoal gateway`.
type Sidecar struct {
	*Proc
	// InstanceID is the fronted instance ("" for a gateway).
	InstanceID string
	// Admin, Gossip and Outbound are listen addresses ("" when off);
	// Listen is the gateway's public listener.
	Admin, Gossip, Outbound, Listen string
	// Upstreams maps a service to its local listen address.
	Upstreams map[string]string
	// StateDir is the --state-dir.
	StateDir string
}

// StartSidecar starts `shoal sidecar` on free ports and waits until its
// admin /ready answers 200 (a first config is applied).
func StartSidecar(t testing.TB, o SidecarOptions) *Sidecar {
	t.Helper()
	sc, args := proxyArgs(t, o)
	hp := o.HealthPath
	if hp == "" {
		hp = "/healthz"
	}
	args = append([]string{"sidecar", "--service", o.Service, "--instance-id", o.InstanceID,
		"--app-port", fmt.Sprint(o.AppPort), "--health-path", hp}, args...)
	if !o.NoEtcd {
		args = append(args, "--etcd", o.CP.Etcd)
	}
	if o.NoRegister {
		args = append(args, "--no-register")
	}
	if o.Metadata != "" {
		args = append(args, "--metadata", o.Metadata)
	}
	sc.Outbound = ""
	if o.Outbound {
		sc.Outbound = FreeAddr(t)
	}
	args = append(args, "--outbound", sc.Outbound)
	sc.InstanceID = o.InstanceID
	args = append(args, o.Extra...)
	sc.Proc = Start(t, Binary(t), nil, args...)
	sc.WaitReady(t)
	return sc
}

// StartGateway starts `shoal gateway` with its public listener on a free
// loopback port and waits until it is ready.
func StartGateway(t testing.TB, o SidecarOptions) *Sidecar {
	t.Helper()
	sc, args := proxyArgs(t, o)
	sc.Listen = FreeAddr(t)
	args = append([]string{"gateway", "--listen", sc.Listen}, args...)
	args = append(args, o.Extra...)
	sc.Proc = Start(t, Binary(t), nil, args...)
	sc.WaitReady(t)
	return sc
}

// proxyArgs returns the flags sidecars and gateways share.
func proxyArgs(t testing.TB, o SidecarOptions) (*Sidecar, []string) {
	t.Helper()
	if o.CP == nil {
		t.Fatalf("harness: SidecarOptions.CP is required")
	}
	sc := &Sidecar{Admin: FreeAddr(t), StateDir: o.StateDir, Upstreams: map[string]string{}}
	if sc.StateDir == "" {
		sc.StateDir = t.TempDir()
	}
	adminListen := sc.Admin
	if o.AdminBeyondLoopback {
		_, port, _ := net.SplitHostPort(sc.Admin)
		adminListen = "0.0.0.0:" + port
	}
	args := []string{"--xds", o.CP.XDS, "--admin-listen", adminListen, "--state-dir", sc.StateDir}
	if !o.NoGossip {
		sc.Gossip = FreeAddr(t)
		join := o.GossipJoin
		if join == "" {
			join = o.CP.Gossip
		}
		args = append(args, "--gossip-listen", sc.Gossip, "--gossip-join", join)
		if o.GossipLabel != "" {
			args = append(args, "--gossip-label", o.GossipLabel)
		}
		if o.GossipKey != "" {
			args = append(args, "--gossip-key", o.GossipKey)
		}
	}
	for _, svc := range o.Upstreams {
		sc.Upstreams[svc] = FreeAddr(t)
		args = append(args, "--upstream", svc+"="+sc.Upstreams[svc])
	}
	return sc, args
}

// WaitReady waits until admin /ready answers 200, failing fast if the
// process exits.
func (s *Sidecar) WaitReady(t testing.TB) {
	t.Helper()
	Eventually(t, DefaultTimeout, "sidecar "+s.Admin+" ready", func() bool {
		if s.Exited() {
			t.Fatalf("sidecar exited:\n%s", s.Output())
		}
		return httpOK("http://" + s.Admin + "/ready")
	})
}

// UpstreamURL is "http://<local port of service>".
func (s *Sidecar) UpstreamURL(service string) string { return "http://" + s.Upstreams[service] }

// ClusterStatus mirrors one entry of the admin /clusters JSON.
type ClusterStatus struct {
	Name      string           `json:"name"`
	LB        string           `json:"lb"`
	Endpoints []EndpointStatus `json:"endpoints"`
	// Circuit-breaker limits and the cluster's stall detection (issue 17).
	MaxRequests            int `json:"max_requests"`
	MaxRequestsPerEndpoint int `json:"max_requests_per_endpoint"`
	MaxConnections         int `json:"max_connections"`
	MaxRetries             int `json:"max_retries"`
	StallDetection         struct {
		Disabled bool `json:"disabled"`
	} `json:"stall_detection"`
	SlowStart *struct {
		WindowNS int64 `json:"window_ns"`
	} `json:"slow_start"`
}

// EndpointStatus mirrors one endpoint of the admin /clusters JSON.
type EndpointStatus struct {
	Address string `json:"address"`
	Healthy bool   `json:"healthy"`
	Ejected bool   `json:"ejected"`
	// Stalled: requests in flight and none answered (a blocked event loop).
	Stalled bool `json:"stalled"`
	// Attempts is the sidecar's attempts in flight on the endpoint.
	Attempts int64 `json:"attempts_in_flight"`
}

// Routable reports whether the endpoint may take traffic.
func (e EndpointStatus) Routable() bool { return e.Healthy && !e.Ejected && !e.Stalled }

// Clusters reads admin /clusters; an error means the admin did not answer.
func (s *Sidecar) Clusters() ([]ClusterStatus, error) {
	body, err := getBody("http://" + s.Admin + "/clusters")
	if err != nil {
		return nil, err
	}
	var cs []ClusterStatus
	if err := json.Unmarshal(body, &cs); err != nil {
		return nil, fmt.Errorf("harness: /clusters: %w", err)
	}
	return cs, nil
}

// Cluster returns the named cluster from /clusters (nil if absent or the
// admin did not answer).
func (s *Sidecar) Cluster(name string) *ClusterStatus {
	cs, err := s.Clusters()
	if err != nil {
		return nil
	}
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

// RoutableEndpoints returns the addresses in cluster that may take
// traffic (nil if the cluster is absent).
func (s *Sidecar) RoutableEndpoints(cluster string) []string {
	c := s.Cluster(cluster)
	if c == nil {
		return nil
	}
	var out []string
	for _, e := range c.Endpoints {
		if e.Routable() {
			out = append(out, e.Address)
		}
	}
	return out
}

// ConfigDump returns the raw admin /config_dump JSON.
func (s *Sidecar) ConfigDump() (string, error) {
	b, err := getBody("http://" + s.Admin + "/config_dump")
	return string(b), err
}

// RoutesMention reports whether the applied route configurations name
// cluster (e.g. "web/ring_hash").
func (s *Sidecar) RoutesMention(cluster string) bool {
	dump, err := s.ConfigDump()
	if err != nil {
		return false
	}
	var d struct {
		Routes []json.RawMessage `json:"routes"`
	}
	if json.Unmarshal([]byte(dump), &d) != nil {
		return false
	}
	for _, r := range d.Routes {
		if strings.Contains(string(r), `"`+cluster+`"`) {
			return true
		}
	}
	return false
}

func getBody(url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := adminClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return b, nil
}

// adminClient polls admin endpoints without keep-alive, so no pooled
// connection (and its goroutines) outlives a test.
var adminClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// Versions returns the xDS version the sidecar holds per type URL (from
// /config_dump).
func (s *Sidecar) Versions() (map[string]string, error) {
	dump, err := s.ConfigDump()
	if err != nil {
		return nil, err
	}
	var d struct {
		Versions map[string]string `json:"versions"`
	}
	if err := json.Unmarshal([]byte(dump), &d); err != nil {
		return nil, fmt.Errorf("harness: /config_dump: %w", err)
	}
	return d.Versions, nil
}
