package harness

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// MeshOptions configure StartMesh. Zero values give a plain mesh of one
// service, "web".
type MeshOptions struct {
	// Service is the instances' service name; zero means "web".
	Service string
	// AppEnv returns extra environment for app i (0-based), e.g.
	// DELAY_MS=200 for a slow instance; nil means none.
	AppEnv func(i int) []string
	// Metadata returns the --metadata of instance i (e.g. version=v1).
	Metadata func(i int) string
	// InstanceArgs returns extra flags for instance i's sidecar (e.g.
	// --weight 3); nil means none.
	InstanceArgs func(i int) []string
	// SidecarExtra and ClientExtra are extra flags for the instances'
	// sidecars and the client sidecar.
	SidecarExtra, ClientExtra []string
	// Gateway also starts a gateway.
	Gateway bool
	// ControlPlaneExtra are extra flags for the control plane.
	ControlPlaneExtra []string
}

// Mesh is a control plane, n Node.js instances each with a registering
// sidecar, and a client sidecar with a local port per service
// (--upstream SERVICE=ADDR).
type Mesh struct {
	CP       *ControlPlane
	Service  string
	Apps     []*NodeApp
	Sidecars []*Sidecar
	Client   *Sidecar
	Gateway  *Sidecar // nil unless MeshOptions.Gateway
}

// StartMesh starts a mesh and waits until the client (and gateway) route
// to all n instances.
func StartMesh(t testing.TB, n int, o MeshOptions) *Mesh {
	t.Helper()
	if o.Service == "" {
		o.Service = "web"
	}
	m := &Mesh{CP: StartControlPlane(t, o.ControlPlaneExtra...), Service: o.Service}
	for i := range n {
		var env []string
		if o.AppEnv != nil {
			env = o.AppEnv(i)
		}
		m.Apps = append(m.Apps, StartNodeApp(t, NodeAppOptions{Service: o.Service, ID: m.ID(i), Env: env}))
	}
	for i := range n {
		var md string
		if o.Metadata != nil {
			md = o.Metadata(i)
		}
		extra := slices.Clone(o.SidecarExtra)
		if o.InstanceArgs != nil {
			extra = append(extra, o.InstanceArgs(i)...)
		}
		m.Sidecars = append(m.Sidecars, StartSidecar(t, SidecarOptions{
			CP: m.CP, Service: o.Service, InstanceID: m.ID(i), AppPort: m.Apps[i].Port,
			Metadata: md, Extra: extra,
		}))
	}
	m.Client = StartSidecar(t, SidecarOptions{
		CP: m.CP, Service: "client", InstanceID: "client-1", AppPort: FreePort(t), NoRegister: true,
		Upstreams: []string{o.Service}, Extra: o.ClientExtra,
	})
	if o.Gateway {
		m.Gateway = StartGateway(t, SidecarOptions{CP: m.CP})
	}
	all := m.All()
	for _, s := range m.Proxies() {
		m.WaitRoutable(t, s, m.Service, all...)
	}
	return m
}

// ID is the instance id of instance i: "<service>-<i+1>".
func (m *Mesh) ID(i int) string { return fmt.Sprintf("%s-%d", m.Service, i+1) }

// Addr is the registered address of instance i (its app port).
func (m *Mesh) Addr(i int) string { return fmt.Sprintf("127.0.0.1:%d", m.Apps[i].Port) }

// All returns 0..n-1.
func (m *Mesh) All() []int {
	out := make([]int, len(m.Apps))
	for i := range out {
		out[i] = i
	}
	return out
}

// Proxies returns the client sidecar and the gateway (when started): the
// proxies that send traffic to the instances.
func (m *Mesh) Proxies() []*Sidecar {
	if m.Gateway != nil {
		return []*Sidecar{m.Client, m.Gateway}
	}
	return []*Sidecar{m.Client}
}

// URL is the client sidecar's local port for the mesh's service.
func (m *Mesh) URL() string { return m.Client.UpstreamURL(m.Service) }

// Routes reports whether proxy s would route cluster's traffic exactly to
// the given instances (routable: healthy and not ejected).
func (m *Mesh) Routes(s *Sidecar, cluster string, instances ...int) bool {
	got := s.RoutableEndpoints(cluster)
	want := m.addrs(instances)
	slices.Sort(got)
	slices.Sort(want)
	return slices.Equal(got, want)
}

// WaitRoutable waits until proxy s routes cluster to exactly instances.
// On a timeout it logs what the proxy's /clusters last said of cluster.
func (m *Mesh) WaitRoutable(t testing.TB, s *Sidecar, cluster string, instances ...int) time.Duration {
	t.Helper()
	done := false
	defer func() {
		if !done {
			st, _ := json.Marshal(s.Cluster(cluster))
			t.Logf("harness: %s /clusters %s (want %v): %s", s.Admin, cluster, m.addrs(instances), st)
		}
	}()
	d := Eventually(t, DefaultTimeout, fmt.Sprintf("%s routes %s to instances %v", s.Admin, cluster, instances), func() bool {
		return m.Routes(s, cluster, instances...)
	})
	done = true
	return d
}

// addrs returns the app addresses of instances.
func (m *Mesh) addrs(instances []int) []string {
	out := make([]string, 0, len(instances))
	for _, i := range instances {
		out = append(out, m.Addr(i))
	}
	return out
}

// ApplyRoute applies a route given as YAML through `shoal routes apply`
// and waits until every proxy's route table names each cluster in want
// and routes it to exactly the given instances (nil: all instances).
func (m *Mesh) ApplyRoute(t testing.TB, yaml string, want map[string][]int) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "route.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := Shoal(t, "routes", "apply", "-f", file, "--api", m.CP.API); code != 0 {
		t.Fatalf("shoal routes apply: exit %d: %s%s", code, out, errOut)
	}
	for _, s := range m.Proxies() {
		for c, instances := range want {
			if instances == nil {
				instances = m.All()
			}
			Eventually(t, DefaultTimeout, s.Admin+" route names "+c, func() bool { return s.RoutesMention(c) })
			m.WaitRoutable(t, s, c, instances...)
		}
	}
}

// KillApp kill -9s instance i's app (an app crash).
func (m *Mesh) KillApp(i int) { m.Apps[i].Kill() }

// CrashHost kill -9s instance i's sidecar and app (a host crash).
func (m *Mesh) CrashHost(i int) {
	m.Sidecars[i].Kill()
	m.Apps[i].Kill()
}

// RestartInstance starts instance i's app and sidecar again where they
// exited (same ports, same state dir), and waits until they answer.
func (m *Mesh) RestartInstance(t testing.TB, i int) {
	t.Helper()
	if m.Apps[i].Exited() {
		m.Apps[i].Restart()
		m.Apps[i].WaitListening(t)
	}
	if m.Sidecars[i].Exited() {
		m.Sidecars[i].Restart()
		m.Sidecars[i].WaitReady(t)
	}
}

// WaitListening waits until the app answers /healthz (any status).
func (a *NodeApp) WaitListening(t testing.TB) {
	t.Helper()
	url := "http://127.0.0.1:" + strconv.Itoa(a.Port) + "/healthz"
	Eventually(t, DefaultTimeout, "node app "+a.ID+" listening", func() bool {
		if a.Exited() {
			t.Fatalf("node app %s exited:\n%s", a.ID, a.Output())
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		resp, err := adminClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
}
