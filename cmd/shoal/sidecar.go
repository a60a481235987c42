package main

import (
	"context"
	"flag"
	"io"
	"net"
	"strings"
	"time"

	"github.com/shoal-mesh/shoal/sidecar"
	"github.com/shoal-mesh/shoal/sidecar/accesslog"
	"github.com/shoal-mesh/shoal/sidecar/proxy"
)

// The sidecar and gateway flags are defined on a standard library
// flag.FlagSet: the slim build (slim.go) parses them with it, the full
// build adds them to its cobra commands (pflag.AddGoFlagSet). Linking cobra
// into the slim sidecar cost 1 MiB of RSS (README, Performance).

// repeated is a repeatable string flag.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// proxyFlags are the flags `shoal sidecar` and `shoal gateway` share.
type proxyFlags struct {
	xds, stateDir, admin, gossipListen, gossipJoin, gossipLabel, logLevel string
	accessLog, accessLogFormat, otlpEndpoint                              string
	traceSampleRate                                                       float64
	identity                                                              identityFlags
	gossipKey                                                             gossipKeyFlags
	sotw, pprof, stallDetection                                           bool
	memoryLimit                                                           memoryLimitFlag
	upstreams                                                             repeated
	drainTimeout, writeTimeout, tcpIdleTimeout                            time.Duration
}

func (f *proxyFlags) register(fs *flag.FlagSet, adminDefault string) {
	fs.StringVar(&f.xds, "xds", "127.0.0.1:18000", "control planes' xDS addresses, comma-separated HOST:PORT: the sidecar follows the first that answers and fails over to the next when its stream fails, keeping its last good config")
	fs.BoolVar(&f.sotw, "xds-sotw", false, "use state-of-the-world xDS instead of delta")
	fs.StringVar(&f.stateDir, "state-dir", "", "directory for the last good config (static stability when the control plane is down)")
	fs.StringVar(&f.admin, "admin-listen", adminDefault, "admin address (/ready, /metrics, /config_dump, /clusters); empty disables")
	fs.StringVar(&f.gossipListen, "gossip-listen", "", "gossip (memberlist) address, e.g. 127.0.0.1:7947; empty disables gossip")
	fs.StringVar(&f.gossipJoin, "gossip-join", "", "comma-separated gossip seeds (e.g. the control plane's --gossip-listen)")
	f.gossipKey.register(fs)
	fs.StringVar(&f.gossipLabel, "gossip-label", "shoal", "gossip cluster label; meshes with different labels never merge")
	fs.Var(&f.upstreams, "upstream", "NAME=ADDR: a local port that proxies only to service NAME (repeatable)")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 10*time.Second, "on shutdown, how long to wait for every proxy to ACK the deregistration, then how long in-flight requests may take to finish")
	fs.DurationVar(&f.writeTimeout, "write-timeout", proxy.DefaultWriteTimeout, "close a client connection when no byte of its response could be written for this long (a client that stopped reading; a slow download that keeps reading is not cut); negative disables")
	fs.DurationVar(&f.tcpIdleTimeout, "tcp-idle-timeout", proxy.DefaultTCPIdleTimeout, "close both sides of a proxied TCP connection when no byte moved either way for this long; negative disables")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.accessLogFormat, "access-log-format", "text", "access log line format: text (Envoy's default format) or json")
	fs.StringVar(&f.otlpEndpoint, "otlp-endpoint", "", "OTLP/gRPC collector (HOST:PORT) to export a span per HTTP/1.1 request to; empty disables tracing (trace headers pass through)")
	fs.Float64Var(&f.traceSampleRate, "trace-sample-rate", 1, "share (0..1) of new traces (requests without a traceparent) that are sampled; requests with one keep its decision")
	f.identity.register(fs)
	f.identity.registerMTLS(fs)
	fs.BoolVar(&f.stallDetection, "stall-detection", true, "take an endpoint that holds several requests and answers none for 1-2 s (a blocked event loop) out of rotation and send its waiting GETs elsewhere; turn off for services whose requests all wait long on purpose (long polls)")
	fs.BoolVar(&f.pprof, "pprof", false, "serve net/http/pprof's /debug/pprof/ on the admin listener")
	f.memoryLimit = memoryLimitFlag{v: defaultProxyMemoryLimit, gcPercent: defaultProxyGCPercent}
	fs.Var(&f.memoryLimit, "memory-limit", "soft limit of the Go runtime's memory (debug.SetMemoryLimit), e.g. 16MiB, 64MiB; 0 disables; GOMEMLIMIT in the environment wins over the default")
}

func (f *proxyFlags) apply(cfg *sidecar.Config, stderr io.Writer) error {
	if err := f.check(); err != nil {
		return err
	}
	cfg.XDSSotW, cfg.StateDir, cfg.AdminListen, cfg.Pprof = f.sotw, f.stateDir, f.admin, f.pprof
	xds := splitList(f.xds)
	cfg.XDS, cfg.XDSFallback = xds[0], xds[1:]
	key, err := f.gossipKey.resolve()
	if err != nil {
		return err
	}
	cfg.GossipListen, cfg.GossipJoin, cfg.GossipKey, cfg.GossipLabel = f.gossipListen, splitList(f.gossipJoin), key, f.gossipLabel
	cfg.DrainTimeout, cfg.WriteTimeout, cfg.TCPIdleTimeout = f.drainTimeout, f.writeTimeout, f.tcpIdleTimeout
	if cfg.JoinToken, cfg.CABundle, err = f.identity.resolve(); err != nil {
		return err
	}
	cfg.MTLS = f.identity.mtls
	cfg.AccessLog, cfg.AccessLogFormat = f.accessLog, f.accessLogFormat
	cfg.OTLPEndpoint, cfg.TraceSampleRate = f.otlpEndpoint, f.traceSampleRate
	cfg.NoStallDetection = !f.stallDetection
	if f.otlpEndpoint != "" {
		if err := checkHostPort("--otlp-endpoint", f.otlpEndpoint); err != nil {
			return err
		}
	}
	if f.traceSampleRate < 0 || f.traceSampleRate > 1 {
		return usageErrorf("--trace-sample-rate %v: want a share within 0..1", f.traceSampleRate)
	}
	if _, ok := accesslog.ParseFormat(f.accessLogFormat); !ok {
		return usageErrorf("--access-log-format %q: want text or json", f.accessLogFormat)
	}
	f.memoryLimit.apply()
	setHeapProfiling(f.pprof)
	if cfg.Logger, err = newLogger(stderr, f.logLevel); err != nil {
		return err
	}
	cfg.Upstreams = map[string]string{}
	for _, u := range f.upstreams {
		name, addr, ok := strings.Cut(u, "=")
		if !ok || name == "" || addr == "" {
			return usageErrorf("--upstream %q: want NAME=HOST:PORT", u)
		}
		if err := checkHostPort("--upstream "+name, addr); err != nil {
			return err
		}
		cfg.Upstreams[name] = addr
	}
	sidecar.Version = currentBuild().Version
	return nil
}

// check validates the address flags both commands share.
func (f *proxyFlags) check() error {
	if _, err := checkHostPorts("--xds", f.xds); err != nil {
		return err
	}
	if err := checkListen("--admin-listen", f.admin, true); err != nil {
		return err
	}
	if err := checkListen("--gossip-listen", f.gossipListen, true); err != nil {
		return err
	}
	if f.gossipJoin != "" {
		if _, err := checkHostPorts("--gossip-join", f.gossipJoin); err != nil {
			return err
		}
	}
	return nil
}

// checkSidecarAddrs validates the address flags only `shoal sidecar` has.
func checkSidecarAddrs(cfg *sidecar.Config, etcd string, register bool) error {
	if register {
		if _, err := checkURLList("--etcd", etcd, "http", "https"); err != nil {
			return err
		}
	}
	if err := checkListen("--listen", cfg.Listen, true); err != nil {
		return err
	}
	if err := checkListen("--outbound", cfg.Outbound, true); err != nil {
		return err
	}
	if err := checkHostPort("--app-address", net.JoinHostPort(cfg.AppAddress, "0")); err != nil {
		return err
	}
	if cfg.AppPort < 1 || cfg.AppPort > 65535 {
		return usageErrorf("--app-port %d: want a port in 1-65535", cfg.AppPort)
	}
	return nil
}

// proxyCommand is `shoal sidecar` or `shoal gateway`: its flags and what
// runs once they are parsed.
type proxyCommand struct {
	name, use, summary string
	flags              *flag.FlagSet
	run                func(ctx context.Context, stderr io.Writer) error
}

func sidecarCommand() proxyCommand {
	var f proxyFlags
	var labels, etcd string
	var noRegister bool
	cfg := sidecar.Config{Mode: sidecar.ModeSidecar, Register: true}
	fs := flag.NewFlagSet("shoal sidecar", flag.ContinueOnError)
	f.register(fs, "127.0.0.1:15000")
	fs.StringVar(&f.accessLog, "access-log", "", "a line per request (Envoy's format, with response flags) to stdout, stderr or a file; empty disables")
	fs.StringVar(&cfg.Service, "service", "", "the app's service name (required)")
	fs.IntVar(&cfg.AppPort, "app-port", 0, "the app's port (required)")
	fs.StringVar(&cfg.AppAddress, "app-address", "127.0.0.1", "the app's address")
	fs.StringVar(&cfg.AppProtocol, "app-protocol", "http", "the app's protocol: http, http2, grpc or tcp")
	fs.StringVar(&cfg.InstanceID, "instance-id", "", "instance id (default SERVICE-HOSTNAME-APPPORT)")
	fs.StringVar(&cfg.Zone, "zone", "", "the instance's zone")
	fs.IntVar(&cfg.Weight, "weight", 0, "the instance's load-balancing weight (1-10000, default 1)")
	fs.StringVar(&labels, "metadata", "", "instance metadata as k=v,k=v (e.g. version=v2)")
	fs.BoolVar(&noRegister, "no-register", false, "do not register the app (the app registers itself)")
	fs.StringVar(&cfg.RegisterVia, "register-via", "", "how the app is registered: controlplane (the control plane's RegistryService on the --xds addresses, with the sidecar's SVID; etcd need not be reachable) or etcd (straight into --etcd, trusted networks); default controlplane with an identity (--join-token-file), else etcd")
	fs.StringVar(&etcd, "etcd", "127.0.0.1:2379", "comma-separated etcd endpoints for registration in etcd (--register-via etcd)")
	fs.DurationVar(&cfg.TTL, "ttl", 10*time.Second, "registration lease TTL")
	fs.StringVar(&cfg.HealthPath, "health-path", "", "HTTP path of the app's health check (default: TCP connect)")
	fs.DurationVar(&cfg.HealthInterval, "health-interval", 250*time.Millisecond, "health check interval")
	fs.StringVar(&cfg.Listen, "listen", "", "inbound listener to the app (registered instead of the app port when set)")
	fs.StringVar(&cfg.Outbound, "outbound", "127.0.0.1:15001", "outbound listener routed by Host header; empty disables")
	fs.StringVar(&cfg.TrustDomain, "trust-domain", "shoal.local", "with --join-token-file: the SPIFFE trust domain (the control plane's --trust-domain)")
	fs.StringVar(&cfg.Namespace, "namespace", "default", "with --join-token-file: the service's namespace in its SPIFFE ID")
	run := func(ctx context.Context, stderr io.Writer) error {
		if err := checkSidecarAddrs(&cfg, etcd, !noRegister); err != nil {
			return err
		}
		if err := f.apply(&cfg, stderr); err != nil {
			return err
		}
		cfg.Register, cfg.EtcdEndpoints = !noRegister, splitList(etcd)
		md, err := parseLabels(labels)
		if err != nil {
			return err
		}
		cfg.Metadata = md
		p, err := sidecar.New(cfg)
		if err != nil {
			return err
		}
		return p.Run(ctx)
	}
	return proxyCommand{name: "sidecar", use: "sidecar --service NAME --app-port PORT", summary: "run a sidecar next to an app instance", flags: fs, run: run}
}

func gatewayCommand() proxyCommand {
	var f proxyFlags
	cfg := sidecar.Config{Mode: sidecar.ModeGateway}
	fs := flag.NewFlagSet("shoal gateway", flag.ContinueOnError)
	f.register(fs, "127.0.0.1:15100")
	fs.StringVar(&f.accessLog, "access-log", "stdout", "a line per request (Envoy's format, with response flags) to stdout, stderr or a file; empty disables")
	fs.StringVar(&cfg.GatewayListen, "listen", "0.0.0.0:8080", "public listener")
	fs.IntVar(&cfg.TrustedHops, "trusted-hops", 0, "X-Forwarded-For hops to trust for the client IP (0: the peer address)")
	run := func(ctx context.Context, stderr io.Writer) error {
		if err := checkHostPort("--listen", cfg.GatewayListen); err != nil {
			return err
		}
		if err := f.apply(&cfg, stderr); err != nil {
			return err
		}
		p, err := sidecar.New(cfg)
		if err != nil {
			return err
		}
		return p.Run(ctx)
	}
	return proxyCommand{name: "gateway", use: "gateway", summary: "run the edge gateway", flags: fs, run: run}
}

func parseLabels(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range splitList(s) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--metadata %q: want k=v,k=v", s)
		}
		out[k] = v
	}
	return out, nil
}
