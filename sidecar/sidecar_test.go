package sidecar_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-mesh/shoal/controlplane"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
	"github.com/shoal-mesh/shoal/registry/etcdstore"
	"github.com/shoal-mesh/shoal/sidecar"
	"github.com/shoal-mesh/shoal/sidecar/xdsclient"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, etcdtest.LeakOptions()...) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func startControlPlane(t *testing.T) controlplane.Addrs {
	t.Helper()
	cfg := controlplane.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.EtcdListen, cfg.EtcdPeerListen = etcdtest.FreeAddr(t), etcdtest.FreeAddr(t)
	cfg.XDSListen, cfg.APIListen, cfg.AdminListen, cfg.GossipListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = quiet
	srv, err := controlplane.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	poll(t, "control plane ready", func() bool { return get("http://"+srv.Addrs().Admin+"/ready") == http.StatusOK })
	return srv.Addrs()
}

// runSidecar runs p until the returned stop is called (idempotent).
func runSidecar(t *testing.T, p *sidecar.Proxy) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(20 * time.Millisecond) // poll interval of a loop with a deadline
	}
}

func get(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func appPort(t *testing.T, app *httptest.Server) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(app.URL, "http://"))
	n, _ := strconv.Atoi(p)
	return n
}

func TestSidecarRegistersRoutesAndDeregistersOnShutdown(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	cp := startControlPlane(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-instance", "web-1")
		io.WriteString(w, "hello from web-1")
	}))
	defer app.Close()

	web, err := sidecar.New(sidecar.Config{
		Service: "web", InstanceID: "web-1", AppPort: appPort(t, app), Register: true,
		EtcdEndpoints: []string{cp.Etcd}, XDS: cp.XDS, AdminListen: "127.0.0.1:0",
		GossipListen: "127.0.0.1:0", GossipJoin: []string{cp.Gossip}, Logger: quiet, DrainDelay: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	stopWeb := runSidecar(t, web)
	client, err := sidecar.New(sidecar.Config{
		Service: "client", InstanceID: "client-1", AppPort: 1, XDS: cp.XDS,
		Outbound: "127.0.0.1:0", Upstreams: map[string]string{"web": "127.0.0.1:0"},
		AdminListen: "127.0.0.1:0", StateDir: t.TempDir(), Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	runSidecar(t, client)
	addrs := client.Addrs()
	poll(t, "client sidecar ready", func() bool { return get("http://"+addrs["admin"]+"/ready") == http.StatusOK })

	// Both the per-upstream port and the Host-routed outbound reach web-1.
	poll(t, "web reachable through the upstream port", func() bool { return get("http://"+addrs["upstream web"]+"/") == http.StatusOK })
	// The upstream port needs only the cluster; the Host-routed outbound
	// needs the route too, which may come in a later xDS response.
	poll(t, "web reachable through the outbound by Host", func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addrs["outbound"]+"/", nil)
		req.Host = "web"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	checkConfigDump(t, addrs["admin"])
	checkMembers(t, web.Addrs()["admin"])
	req, _ := http.NewRequest(http.MethodGet, "http://"+addrs["outbound"]+"/", nil)
	req.Host = "web"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "hello from web-1" {
		t.Errorf("outbound Host: web = %d %q", resp.StatusCode, body)
	}
	req.Host = "nope"
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown host = %d, want 404", resp.StatusCode)
	}

	// Graceful shutdown deregisters: the key is gone right after Run returns.
	cli := etcdtest.Client(t, cp.Etcd)
	store := etcdstore.New(cli, quiet)
	if ins, _, _ := store.List(t.Context(), "web"); len(ins) != 1 {
		t.Fatalf("instances before shutdown = %v, want web-1", ins)
	}
	stopWeb()
	if ins, _, _ := store.List(t.Context(), "web"); len(ins) != 0 {
		t.Errorf("instances after shutdown = %v, want none", ins)
	}
}

// checkMembers reads /members as documented: snake_case names, states and
// roles by name (they were Go field names and numbers).
func checkMembers(t *testing.T, admin string) {
	t.Helper()
	type member struct {
		Name      string `json:"name"`
		Address   string `json:"address"`
		State     string `json:"state"`
		Role      string `json:"role"`
		Instances []struct {
			Service string `json:"service"`
			ID      string `json:"id"`
		} `json:"instances"`
	}
	var members []member
	poll(t, "the control plane alive in the web sidecar's /members", func() bool {
		resp, err := http.Get("http://" + admin + "/members")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		members = nil
		if json.NewDecoder(resp.Body).Decode(&members) != nil {
			return false
		}
		for _, m := range members {
			if m.Role == "controlplane" && m.State == "alive" && m.Address != "" {
				return true
			}
		}
		return false
	})
	for _, m := range members {
		if m.Role == "sidecar" && (len(m.Instances) != 1 || m.Instances[0].ID != "web-1" || m.Instances[0].Service != "web") {
			t.Errorf("/members: sidecar %s fronts %+v, want web/web-1", m.Name, m.Instances)
		}
	}
}

// checkConfigDump reads /config_dump as its users do (e2e harness, bench):
// versions by type URL, resources in JSON with Envoy's field names.
func checkConfigDump(t *testing.T, admin string) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/config_dump")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var d struct {
		Versions     map[string]string        `json:"versions"`
		FromStateDir bool                     `json:"from_state_dir"`
		XDSStatus    struct{ Connected bool } `json:"xds_status"`
		Listeners    []map[string]any         `json:"listeners"`
		Routes       []json.RawMessage        `json:"routes"`
		Clusters     []map[string]any         `json:"clusters"`
		Endpoints    []map[string]any         `json:"endpoints"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("/config_dump is not JSON: %v\n%s", err, body)
	}
	if len(d.Versions) != 4 || !d.XDSStatus.Connected || len(d.Listeners) == 0 || len(d.Routes) == 0 {
		t.Errorf("/config_dump: %d versions, connected %v, %d listeners, %d routes", len(d.Versions), d.XDSStatus.Connected, len(d.Listeners), len(d.Routes))
	}
	var web map[string]any
	for _, c := range d.Clusters {
		if c["name"] == "web" {
			web = c
		}
	}
	// lb_policy ROUND_ROBIN is the default: absent, as in Envoy's dump.
	if web == nil || web["@type"] != xdsclient.ClusterType || web["lb_policy"] != nil || web["type"] != "EDS" || web["connect_timeout"] != "2s" {
		t.Errorf("/config_dump cluster web = %v", web)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"cluster":"web"`, `"domains":["web","web:*"]`, `"hostname":"web-1"`, `"port_value":`, `"health_status":"HEALTHY"`} {
		if !strings.Contains(compact.String(), want) {
			t.Errorf("/config_dump lacks %s", want)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []sidecar.Config{
		{Service: "web", AppPort: 80},                             // no --xds
		{Service: "Web", AppPort: 80, XDS: "x:1"},                 // bad service
		{Service: "web", AppPort: 0, XDS: "x:1"},                  // bad port
		{Service: "web", AppPort: 80, XDS: "x:1", Register: true}, // no etcd
		{Mode: sidecar.ModeGateway, XDS: "x:1"},                   // gateway without listener
	} {
		if _, err := sidecar.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", cfg)
		}
	}
	for _, tc := range []struct {
		name    string
		cfg     sidecar.Config
		wantErr string
	}{
		{"an unknown registration mode is named", sidecar.Config{Service: "web", AppPort: 80, XDS: "x:1", Register: true, RegisterVia: "zookeeper"}, `--register-via "zookeeper"`},
		{"registering in etcd needs --etcd", sidecar.Config{Service: "web", AppPort: 80, XDS: "x:1", Register: true, RegisterVia: sidecar.RegisterViaEtcd}, "--register-via etcd needs --etcd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := sidecar.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
