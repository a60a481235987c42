package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-mesh/shoal/bench/internal/proc"
	"github.com/shoal-mesh/shoal/internal/freeport"
)

// instance is a proxy (or the direct baseline) running for one
// measurement.
type instance struct {
	addr string     // where wrk sends its load
	root *proc.Proc // the proxy's root process; nil for direct
	// also are more processes measured with root (the mTLS mode's proxy
	// B) and stopped with it.
	also []*proc.Proc
	note string // caveat to report with the run
}

// usage is the CPU time and memory of root's process tree and also's.
func (inst *instance) usage() (proc.Usage, error) {
	u, err := proc.TreeUsage(inst.root.Pid())
	if err != nil {
		return u, err
	}
	for _, p := range inst.also {
		v, err := proc.TreeUsage(p.Pid())
		if err != nil {
			return u, fmt.Errorf("%s: %w", p.Name, err)
		}
		u.Ticks, u.RSSKB, u.Procs = u.Ticks+v.Ticks, u.RSSKB+v.RSSKB, u.Procs+v.Procs
	}
	return u, nil
}

// nginxStrategy and haproxyStrategy map the harness's strategies to each
// proxy's directive.
var (
	nginxStrategy   = map[string]string{"rr": "", "least": "least_conn;", "hash": "ip_hash;"}
	haproxyStrategy = map[string]string{"rr": "roundrobin", "least": "leastconn", "hash": "source"}
)

// nginxConf is one worker, no access log, an upstream block with
// keepalive 256 (the load-balancing directive must precede keepalive;
// 256 idle connections, like shoal's per-endpoint pool, so that nginx does
// not churn upstream connections at c=50 over three backends) and
// keepalive_requests raised from 1,000 (nginx closed an upstream connection
// every 1,000 requests: ~45 new connections a second at 45k rps; shoal and
// HAProxy keep theirs), and
// HTTP/1.1 with the Connection header cleared so that upstream connections
// are reused.
func nginxConf(dir, listen, strategy string, backends []string) string {
	var servers strings.Builder
	for _, b := range backends {
		fmt.Fprintf(&servers, "        server %s;\n", b)
	}
	lb := nginxStrategy[strategy]
	if lb != "" {
		lb = "        " + lb + "\n"
	}
	return fmt.Sprintf(`worker_processes 1;
daemon off;
master_process on;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
worker_rlimit_nofile 65536;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy_temp;
    fastcgi_temp_path %[1]s/fastcgi_temp;
    uwsgi_temp_path %[1]s/uwsgi_temp;
    scgi_temp_path %[1]s/scgi_temp;
    upstream backend {
%[3]s%[4]s        keepalive 256;
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
`, dir, listen, lb, servers.String())
}

// haproxyConf is one thread, no logging, keep-alive on both sides and
// http-reuse always (the closest match to nginx's keepalive pool).
func haproxyConf(listen, strategy string, backends []string) string {
	var servers strings.Builder
	for i, b := range backends {
		fmt.Fprintf(&servers, "    server b%d %s\n", i+1, b)
	}
	return fmt.Sprintf(`global
    nbthread 1
    maxconn 4096

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
    balance %s
%s`, listen, haproxyStrategy[strategy], servers.String())
}

func (h *harness) startNginx(ctx context.Context, strategy string, accessLog bool, dir string) (*instance, error) {
	listen, err := freeport.Addr()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	text := nginxConf(dir, listen, strategy, h.backendAddrs())
	if accessLog {
		text = withNginxAccessLog(text, filepath.Join(dir, "access.log"))
	}
	if h.cfg.H2 {
		text = nginxGRPCConf(dir, listen, strategy, h.backendAddrs())
	}
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	p, err := h.ps.Start(proc.Spec{
		Name: "nginx-" + strategy,
		Args: []string{h.cfg.NginxBin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "nginx-error.log")},
		CPUs: h.proxyCPUs(),
	})
	if err != nil {
		return nil, err
	}
	return h.ready(ctx, &instance{addr: listen, root: p})
}

func (h *harness) startHAProxy(ctx context.Context, strategy, dir string) (*instance, error) {
	listen, err := freeport.Addr()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "haproxy.cfg")
	text := haproxyConf(listen, strategy, h.backendAddrs())
	if h.cfg.H2 {
		text = haproxyH2Conf(listen, strategy, h.backendAddrs())
	}
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	p, err := h.ps.Start(proc.Spec{
		Name: "haproxy-" + strategy,
		Args: []string{h.cfg.HAProxyBin, "-db", "-f", conf},
		CPUs: h.proxyCPUs(),
	})
	if err != nil {
		return nil, err
	}
	return h.ready(ctx, &instance{addr: listen, root: p})
}

// ready waits until a request through inst is answered by a backend, or
// fails with the tail of the proxy's log.
func (h *harness) ready(ctx context.Context, inst *instance) (*instance, error) {
	var err error
	if h.cfg.H2 {
		err = waitGRPCAnswer(ctx, inst.addr, 20*time.Second, inst.root)
	} else {
		err = waitBackendAnswer(ctx, "http://"+inst.addr+"/", 20*time.Second, inst.root)
	}
	if err != nil {
		h.ps.Stop(inst.root, 3*time.Second)
		return nil, fmt.Errorf("%s not ready: %w\n%s", inst.root.Name, err, inst.root.Tail())
	}
	return inst, nil
}

// nginxEnvoyFormat is Envoy's default access log format in nginx variables
// (the sidecar's --access-log format), so both write the same line.
const nginxEnvoyFormat = `'[$time_iso8601] "$request" $status - $request_length $bytes_sent $request_time - "$http_x_forwarded_for" "$http_user_agent" "$http_x_request_id" "$host" "$upstream_addr"'`

// withNginxAccessLog replaces conf's `access_log off` with a buffered
// access log to path, flushed every 100 ms like the sidecar's.
func withNginxAccessLog(conf, path string) string {
	return strings.Replace(conf, "    access_log off;\n",
		"    log_format envoy "+nginxEnvoyFormat+";\n    access_log "+path+" envoy buffer=64k flush=100ms;\n", 1)
}
