package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-mesh/shoal/bench/internal/proc"
	"github.com/shoal-mesh/shoal/internal/freeport"
)

// running is a proxy started for one measurement.
type running struct {
	addr string     // where the load goes
	p    *proc.Proc // the proxy's root process
	// admin is the sidecar's admin address; empty for nginx and HAProxy.
	admin string
	note  string
}

// start starts t's proxy, fresh, and waits until every instance has
// answered through it.
func (h *harness) start(ctx context.Context, t target, dir string) (*running, error) {
	var r *running
	var err error
	switch t.Proxy {
	case "nginx":
		r, err = h.startNginx(dir)
	case "haproxy":
		r, err = h.startHAProxy(dir)
	case "shoal":
		r, err = h.startSidecar(ctx, t.Strategy, dir)
	default:
		err = fmt.Errorf("unknown proxy %q", t.Proxy)
	}
	if err != nil {
		return nil, err
	}
	if err := h.waitAllAnswer(ctx, r); err != nil {
		h.ps.Stop(r.p, 3*time.Second)
		return nil, fmt.Errorf("%s: %w\n%s", t, err, r.p.Tail())
	}
	return r, nil
}

// nginxConf: one worker, no access log, least_conn over the instances
// with a pool of idle upstream connections (keepalive), HTTP/1.1 upstream.
func nginxConf(dir, listen string, backends []string) string {
	var servers strings.Builder
	for _, b := range backends {
		fmt.Fprintf(&servers, "        server %s;\n", b)
	}
	return fmt.Sprintf(`worker_processes 1;
daemon off;
master_process on;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
worker_rlimit_nofile 65536;
events {
    worker_connections 8192;
}
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy_temp;
    fastcgi_temp_path %[1]s/fastcgi_temp;
    uwsgi_temp_path %[1]s/uwsgi_temp;
    scgi_temp_path %[1]s/scgi_temp;
    keepalive_requests 1000000;
    upstream backend {
        least_conn;
%[3]s        keepalive 256;
        keepalive_requests 1000000;
    }
    server {
        listen %[2]s;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`, dir, listen, servers.String())
}

// haproxyConf: one thread, no logging, leastconn, keep-alive both sides.
func haproxyConf(listen string, backends []string) string {
	var servers strings.Builder
	for i, b := range backends {
		fmt.Fprintf(&servers, "    server s%d %s\n", i+1, b)
	}
	return fmt.Sprintf(`global
    nbthread 1
    maxconn 8192

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
    http-reuse always

frontend fe
    bind %s
    default_backend be

backend be
    balance leastconn
%s`, listen, servers.String())
}

func (h *harness) startNginx(dir string) (*running, error) {
	listen, err := freeport.Addr()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConf(dir, listen, h.fleet.addrs())), 0o644); err != nil {
		return nil, err
	}
	p, err := h.ps.Start(proc.Spec{Name: "nginx", Args: []string{h.cfg.NginxBin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "nginx-error.log")}})
	if err != nil {
		return nil, err
	}
	return &running{addr: listen, p: p}, nil
}

func (h *harness) startHAProxy(dir string) (*running, error) {
	listen, err := freeport.Addr()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(conf, []byte(haproxyConf(listen, h.fleet.addrs())), 0o644); err != nil {
		return nil, err
	}
	p, err := h.ps.Start(proc.Spec{Name: "haproxy", Args: []string{h.cfg.HAProxyBin, "-db", "-f", conf}})
	if err != nil {
		return nil, err
	}
	return &running{addr: listen, p: p}, nil
}

// strategyMarker is a string the sidecar's /config_dump holds once it has
// the strategy's cluster (ARCHITECTURE.md: least_loaded is Envoy's
// client_side_weighted_round_robin policy).
var strategyMarker = map[string]string{
	"least_request": "LEAST_REQUEST",
	"least_loaded":  "client_side_weighted_round_robin",
}

// startSidecar applies a route giving the service the strategy through the
// management API (`shoal routes apply`), then starts a fresh sidecar with
// GOMAXPROCS=1 and an --upstream port for the service (the equivalent of
// an nginx upstream block), and waits until its config names the strategy.
func (h *harness) startSidecar(ctx context.Context, strategy, dir string) (*running, error) {
	f := &h.fleet
	route := filepath.Join(dir, "route.yaml")
	yaml := fmt.Sprintf("name: backend\nhosts: [backend]\nrules:\n  - destinations:\n      - service: backend\n    strategy: %s\n", strategy)
	if err := os.WriteFile(route, []byte(yaml), 0o644); err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	out, err := exec.CommandContext(actx, h.cfg.ShoalBin, "routes", "apply", "-f", route, "--api", f.api).CombinedOutput()
	cancel()
	if err != nil {
		return nil, fmt.Errorf("shoal routes apply: %w: %s", err, bytes.TrimSpace(out))
	}
	addrs := make([]string, 5)
	for i := range addrs {
		if addrs[i], err = freeport.Addr(); err != nil {
			return nil, err
		}
	}
	upstream, inbound, outbound, admin, gossip := addrs[0], addrs[1], addrs[2], addrs[3], addrs[4]
	_, appPort, _ := strings.Cut(h.localApp, ":")
	extra := strings.Fields(os.Getenv("SHOAL_BENCH_SIDECAR_ARGS")) // experiments, e.g. "--pprof"
	p, err := h.ps.Start(proc.Spec{
		Name: "shoal-sidecar-" + strategy,
		Args: append([]string{h.cfg.sidecarBin(), "sidecar", "--service", "bench-client", "--app-port", appPort,
			"--no-register", "--etcd", "http://" + f.etcd, "--xds", f.xds,
			"--listen", inbound, "--outbound", outbound, "--upstream", "backend=" + upstream,
			"--admin-listen", admin, "--state-dir", filepath.Join(dir, "state"),
			"--gossip-listen", gossip, "--gossip-join", f.gossip}, extra...),
		Env: []string{"GOMAXPROCS=1"},
	})
	if err != nil {
		return nil, err
	}
	r := &running{addr: upstream, p: p, admin: admin}
	if m := strategyMarker[strategy]; m != "" {
		err := poll(ctx, 20*time.Second, p, func() error {
			dump, err := getBody("http://"+admin+"/config_dump", 2*time.Second)
			if err == nil && !strings.Contains(dump, m) {
				err = fmt.Errorf("/config_dump does not mention %s", m)
			}
			return err
		})
		if err != nil {
			h.ps.Stop(p, 3*time.Second)
			return nil, fmt.Errorf("sidecar %s: %w\n%s", strategy, err, p.Tail())
		}
	}
	return r, nil
}

// waitAllAnswer sends requests through r until every instance answered
// one: the proxy is up and knows the whole fleet.
func (h *harness) waitAllAnswer(ctx context.Context, r *running) error {
	seen := map[string]bool{}
	return poll(ctx, 30*time.Second, r.p, func() error {
		for range 10 {
			resp, err := httpClient.Get("http://" + r.addr + "/")
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				seen[resp.Header.Get("X-Backend")] = true
			}
		}
		for _, id := range h.fleet.ids() {
			if !seen[id] {
				return fmt.Errorf("instance %s has not answered yet (answered: %v)", id, seen)
			}
		}
		return nil
	})
}

var httpClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func getBody(url string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

// poll calls check every 50ms until it succeeds, returning its last error
// once timeout passes, ctx is done or p (if not nil) exits.
func poll(ctx context.Context, timeout time.Duration, p *proc.Proc, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited (%v); last check: %w", p.Name, p.Err(), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; last check: %w", ctx.Err(), err)
		case <-tick.C:
		}
	}
}
