package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-mesh/shoal/bench/internal/proc"
	"github.com/shoal-mesh/shoal/internal/freeport"
)

// benchService is the service the backends register as; routes and the
// sidecar's --upstream name it.
const benchService = "backend"

// routeStrategy maps the harness's strategies to the route API's enum.
var routeStrategy = map[string]string{
	"rr":    "STRATEGY_ROUND_ROBIN",
	"least": "STRATEGY_LEAST_REQUEST",
	"hash":  "STRATEGY_IP_HASH",
}

// strategyMarkers are strings whose presence in the sidecar's
// /config_dump shows it received the strategy's cluster variant
// (ARCHITECTURE.md: clusters "<service>/<strategy>", IP hash is RING_HASH
// or MAGLEV). Round robin is the default cluster and has no marker.
var strategyMarkers = map[string][]string{
	"least": {"least_request", "LEAST_REQUEST"},
	"hash":  {"ring_hash", "RING_HASH", "maglev", "MAGLEV"},
}

// sidecarFlags are the `shoal sidecar` flags the harness passes; all must
// appear in its -h output.
var sidecarFlags = []string{"service", "app-port", "no-register", "etcd", "xds", "listen", "outbound",
	"upstream", "admin-listen", "state-dir", "gossip-listen", "gossip-join"}

// shoalEnv is the control plane shared by every shoal measurement, with
// the backends registered in its etcd.
type shoalEnv struct {
	cp                            *proc.Proc
	etcd, xds, api, admin, gossip string   // addresses
	routesCLI                     bool     // `shoal routes apply` exists
	tokens                        []string // the mTLS mode's join token files: sidecar B's, sidecar A's
}

// setupShoal checks that the shoal binary has a sidecar, starts a control
// plane (embedded etcd) on the load CPUs, and registers the backends. An
// error says why shoal cannot be measured.
func (h *harness) setupShoal(ctx context.Context) (*shoalEnv, error) {
	bin := h.cfg.sidecarBin()
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("shoal binary: %w", err)
	}
	help, _ := exec.CommandContext(ctx, bin, "sidecar", "-h").CombinedOutput()
	if strings.Contains(string(help), "unknown command") {
		return nil, errors.New("this shoal binary has no `sidecar` command yet")
	}
	var missing []string
	for _, f := range sidecarFlags {
		if !strings.Contains(string(help), "-"+f+" ") && !strings.Contains(string(help), "-"+f+"\n") {
			missing = append(missing, "--"+f)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("`shoal sidecar -h` lacks %s", strings.Join(missing, ", "))
	}
	routesHelp, _ := exec.CommandContext(ctx, h.cfg.ShoalBin, "routes", "-h").CombinedOutput()
	env := &shoalEnv{routesCLI: !strings.Contains(string(routesHelp), "unknown command")}
	if err := h.startControlPlane(ctx, env); err != nil {
		return nil, err
	}
	if h.cfg.MTLS {
		return env, h.createMTLSTokens(ctx, env)
	}
	protocol := "http"
	if h.cfg.H2 {
		protocol = "grpc"
	}
	for _, b := range h.backends {
		if err := env.register(ctx, b, protocol); err != nil {
			return nil, err
		}
	}
	return env, nil
}

func (h *harness) startControlPlane(ctx context.Context, env *shoalEnv) error {
	addrs := make([]string, 6)
	for i := range addrs {
		a, err := freeport.Addr()
		if err != nil {
			return err
		}
		addrs[i] = a
	}
	env.etcd, env.xds, env.api, env.admin, env.gossip = addrs[0], addrs[2], addrs[3], addrs[4], addrs[5]
	p, err := h.ps.Start(proc.Spec{
		Name: "shoal-controlplane",
		Args: []string{h.cfg.ShoalBin, "controlplane", "--data-dir", filepath.Join(h.work, "cp-data"),
			"--etcd-listen", env.etcd, "--etcd-peer-listen", addrs[1], "--xds-listen", env.xds,
			"--api-listen", env.api, "--admin-listen", env.admin, "--gossip-listen", env.gossip,
			"--log-level", "warn"},
		CPUs: h.loadCPUs(),
	})
	if err != nil {
		return err
	}
	env.cp = p
	err = poll(ctx, 60*time.Second, p, func() error {
		_, err := getBody("http://"+env.admin+"/ready", 2*time.Second)
		return err
	})
	if err != nil {
		return fmt.Errorf("control plane not ready: %w\n%s", err, p.Tail())
	}
	return nil
}

// register writes the backend's instance key through etcd's JSON gateway,
// without a lease: the data dir is thrown away with the run.
func (env *shoalEnv) register(ctx context.Context, b backendProc, protocol string) error {
	host, port, _ := strings.Cut(b.addr, ":")
	p, _ := strconv.Atoi(port)
	inst, _ := json.Marshal(map[string]any{"id": b.id, "service": benchService, "address": host, "port": p, "protocol": protocol})
	return env.etcdPut(ctx, "/shoal/v1/instances/"+benchService+"/"+b.id, inst)
}

func (env *shoalEnv) etcdPut(ctx context.Context, key string, value []byte) error {
	body, _ := json.Marshal(map[string]string{
		"key":   base64.StdEncoding.EncodeToString([]byte(key)),
		"value": base64.StdEncoding.EncodeToString(value),
	})
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+env.etcd+"/v3/kv/put", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("etcd put %s: %w", key, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd put %s: %s", key, resp.Status)
	}
	return nil
}

// routeYAML is the route giving the bench service one rule with strategy.
func routeYAML(strategy string) string {
	return fmt.Sprintf(`name: %[1]s
hosts: [%[1]s]
rules:
  - destinations:
      - service: %[1]s
    strategy: %[2]s
`, benchService, routeStrategy[strategy])
}

// applyRoute sets the strategy with `shoal routes apply`, or, while that
// command does not exist, by writing the route's protobuf JSON to its etcd
// key (ARCHITECTURE.md: /shoal/v1/routes/<name>).
func (h *harness) applyRoute(ctx context.Context, env *shoalEnv, strategy, dir string) (note string, err error) {
	file := filepath.Join(dir, "route.yaml")
	if err := os.WriteFile(file, []byte(routeYAML(strategy)), 0o644); err != nil {
		return "", err
	}
	if env.routesCLI {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, h.cfg.ShoalBin, "routes", "apply", "-f", file, "--api", env.api).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("shoal routes apply: %w: %s", err, bytes.TrimSpace(out))
		}
		return "", nil
	}
	route, _ := json.Marshal(map[string]any{
		"name": benchService, "hosts": []string{benchService},
		"rules": []any{map[string]any{
			"destinations": []any{map[string]any{"service": benchService}},
			"strategy":     routeStrategy[strategy],
		}},
	})
	return "route written to etcd directly (no `shoal routes`)", env.etcdPut(ctx, "/shoal/v1/routes/"+benchService, route)
}

// startShoal applies the strategy's route, then starts a fresh sidecar
// (GOMAXPROCS=1, on the proxy CPUs, empty state dir so that no earlier
// strategy's last good config is loaded) and waits until a backend answers
// through its --upstream port and, for least request and IP hash, until
// its /config_dump shows the strategy's cluster.
func (h *harness) startShoal(ctx context.Context, bin, strategy string, accessLog bool, dir string) (*instance, error) {
	env := h.shoal
	note, err := h.applyRoute(ctx, env, strategy, dir)
	if err != nil {
		return nil, err
	}
	addrs := make([]string, 5)
	for i := range addrs {
		if addrs[i], err = freeport.Addr(); err != nil {
			return nil, err
		}
	}
	upstream, inbound, outbound, admin, gossip := addrs[0], addrs[1], addrs[2], addrs[3], addrs[4]
	_, appPort, _ := strings.Cut(h.app.addr, ":")
	// SHOAL_BENCH_SIDECAR_ARGS adds flags for experiments, e.g. "--pprof".
	extra := strings.Fields(os.Getenv("SHOAL_BENCH_SIDECAR_ARGS"))
	if accessLog {
		extra = append(extra, "--access-log", filepath.Join(dir, "access.log"))
	}
	p, err := h.ps.Start(proc.Spec{
		Name: "shoal-sidecar-" + strategy,
		Args: append([]string{bin, "sidecar", "--service", "bench-client", "--app-port", appPort,
			"--no-register", "--etcd", "http://" + env.etcd, "--xds", env.xds,
			"--listen", inbound, "--outbound", outbound, "--upstream", benchService + "=" + upstream,
			"--admin-listen", admin, "--state-dir", filepath.Join(dir, "state"),
			"--gossip-listen", gossip, "--gossip-join", env.gossip}, extra...),
		CPUs: h.proxyCPUs(),
		Env:  []string{"GOMAXPROCS=1"},
	})
	if err != nil {
		return nil, err
	}
	inst, err := h.ready(ctx, &instance{addr: upstream, root: p})
	if err != nil {
		return nil, err
	}
	if err := confirmStrategy(ctx, admin, strategy, p); err != nil {
		note = strings.TrimPrefix(note+"; strategy not confirmed in /config_dump", "; ")
		fmt.Fprintf(os.Stderr, "sidebyside: shoal/%s: strategy not confirmed: %v\n", strategy, err)
	}
	inst.note = note
	return inst, nil
}

func confirmStrategy(ctx context.Context, admin, strategy string, p *proc.Proc) error {
	markers := strategyMarkers[strategy]
	if len(markers) == 0 {
		return nil
	}
	return poll(ctx, 10*time.Second, p, func() error {
		dump, err := getBody("http://"+admin+"/config_dump", 2*time.Second)
		if err != nil {
			return err
		}
		for _, m := range markers {
			if strings.Contains(dump, m) {
				return nil
			}
		}
		return fmt.Errorf("/config_dump mentions none of %q", markers)
	})
}

// sidecarBin is the binary that runs `shoal sidecar`.
func (c *Config) sidecarBin() string {
	if c.SidecarBin != "" {
		return c.SidecarBin
	}
	return c.ShoalBin
}
