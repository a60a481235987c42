package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Proxies and strategies the harness knows, in report order.
var (
	allProxies    = []string{"nginx", "haproxy", "shoal"}
	allStrategies = []string{"rr", "least", "hash"}
)

// Config is the whole harness configuration; parseConfig fills it from
// flags. Durations are per measurement.
type Config struct {
	Duration time.Duration // measured wrk run per (config, round)
	Warmup   time.Duration // unmeasured wrk run just before it
	Runs     int           // rounds; every config is measured once per round
	Conns    int           // wrk connections
	Threads  int           // wrk threads; 0 means one per load CPU
	Quick    bool
	// H2 measures h2c gRPC unary calls with h2load instead of HTTP/1.1
	// with wrk (issue 19).
	H2 bool
	// MTLS measures the proxy-to-proxy hop over mTLS (issue 13): wrk →
	// proxy A → mTLS TLS 1.3 keep-alive → proxy B → b1, both proxies' CPU.
	MTLS bool

	ProxyCPUs string // taskset list for the proxy under test
	LoadCPUs  string // taskset list for wrk, backends and the control plane
	NoPin     bool   // no taskset at all

	Proxies    []string // subset of allProxies; "direct" always runs
	Strategies []string // subset of allStrategies

	ShoalBin, BackendBin, NginxBin, HAProxyBin, WrkBin, H2LoadBin string
	// SidecarBin runs `shoal sidecar`; empty means ShoalBin.
	SidecarBin string
	ResultsDir string // JSON and markdown go here
	WorkDir    string // configs, logs, state; a temp dir by default
	KeepWork   bool   // keep WorkDir (logs) after the run
	// AccessLog turns access logs on: nginx with a buffered access_log in
	// Envoy's default format, the sidecar with --access-log, both to a file
	// in WorkDir (HAProxy logs only to syslog: leave it out with -proxies).
	AccessLog bool
	// AccessLogAB measures every proxy (nginx, shoal) both without and
	// with access logs in each round, so that one run gives the log's own
	// cost (with/without per proxy) next to shoal/nginx for both.
	AccessLogAB bool
	// BaselineSidecar is a second sidecar binary (say main's build),
	// measured as target "shoal-base" next to every shoal target, so that
	// a change's cost comes from paired runs: shoal/shoal-base.
	BaselineSidecar string
}

func parseConfig(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("sidebyside", flag.ContinueOnError)
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured wrk run per config and round")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "unmeasured warmup before each measured run")
	fs.IntVar(&c.Runs, "runs", 3, "rounds (A/B interleaved); medians are reported")
	fs.IntVar(&c.Conns, "conns", 50, "wrk connections (keep-alive HTTP/1.1)")
	fs.IntVar(&c.Threads, "threads", 0, "wrk threads (0: one per load CPU)")
	fs.BoolVar(&c.Quick, "quick", false, "smoke run: 2 rounds of 2s after a 1s warmup (about a minute)")
	fs.BoolVar(&c.H2, "h2", false, "h2c gRPC unary calls (grpc.health.v1.Health/Check) with h2load, 4 streams per connection, instead of HTTP/1.1 with wrk")
	fs.BoolVar(&c.MTLS, "mtls", false, "two proxies per config with mTLS between them (TLS 1.3, keep-alive): wrk → A → mTLS → B → one backend; CPU of both proxies (nginx proxy_ssl, HAProxy ssl crt/verify, two shoal sidecars with identities)")
	fs.StringVar(&c.H2LoadBin, "h2load", "h2load", "h2load binary (Debian's nghttp2-client)")
	fs.StringVar(&c.ProxyCPUs, "proxy-cpus", "1", "taskset CPU list for the proxy under test")
	fs.StringVar(&c.LoadCPUs, "load-cpus", "0", "taskset CPU list for wrk, the backends and the control plane")
	fs.BoolVar(&c.NoPin, "no-pin", false, "do not pin processes with taskset")
	proxies := fs.String("proxies", strings.Join(allProxies, ","), "proxies to measure besides direct")
	strategies := fs.String("strategies", "", "strategies: rr, least, hash (default: all; rr with -h2)")
	fs.StringVar(&c.ShoalBin, "shoal", "bench/results/bin/shoal", "shoal binary")
	fs.StringVar(&c.SidecarBin, "sidecar", "", "shoal binary for the sidecar (default: -shoal), e.g. the slim static build")
	fs.StringVar(&c.BackendBin, "backend", "bench/results/bin/backend", "backend binary (bench/cmd/backend)")
	fs.StringVar(&c.NginxBin, "nginx", "nginx", "nginx binary")
	fs.StringVar(&c.HAProxyBin, "haproxy", "haproxy", "haproxy binary")
	fs.StringVar(&c.WrkBin, "wrk", "wrk", "wrk binary")
	fs.StringVar(&c.ResultsDir, "results", "bench/results", "directory for the JSON and markdown results")
	fs.StringVar(&c.WorkDir, "work", "", "working directory for configs and logs (default: a temp dir)")
	fs.BoolVar(&c.KeepWork, "keep-work", false, "keep the working directory (logs of every process)")
	fs.BoolVar(&c.AccessLog, "access-log", false, "access logs on: nginx (buffered access_log, Envoy's default format) and the sidecar (--access-log) write a line per request to a file; use with -proxies nginx,shoal")
	fs.BoolVar(&c.AccessLogAB, "access-log-ab", false, "measure each proxy without and with access logs (as -access-log) in every round: the log's cost per proxy and shoal/nginx both ways; use with -proxies nginx,shoal")
	fs.StringVar(&c.BaselineSidecar, "baseline-sidecar", "", "a second sidecar binary (e.g. main's slim build) measured as shoal-base beside every shoal run; reports CPU/req and p99 shoal/shoal-base")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.Quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["duration"] {
			c.Duration = 2 * time.Second
		}
		if !set["warmup"] {
			c.Warmup = time.Second
		}
		if !set["runs"] {
			c.Runs = 2
		}
	}
	if c.AccessLogAB && (c.AccessLog || c.H2) {
		return c, errors.New("-access-log-ab measures with and without access logs already: not with -access-log or -h2")
	}
	var err error
	if c.Proxies, err = subset(*proxies, allProxies); err != nil {
		return c, fmt.Errorf("-proxies: %w", err)
	}
	if *strategies == "" {
		*strategies = strings.Join(allStrategies, ",")
		if c.H2 || c.MTLS {
			*strategies = "rr"
		}
	}
	if c.Strategies, err = subset(*strategies, allStrategies); err != nil {
		return c, fmt.Errorf("-strategies: %w", err)
	}
	switch {
	case c.H2 && c.MTLS:
		return c, errors.New("-h2 and -mtls cannot be combined yet")
	case c.MTLS && !slices.Equal(c.Strategies, []string{"rr"}):
		return c, errors.New("-mtls measures round robin only (one proxy B per config): use -strategies rr")
	case c.Duration < time.Second:
		return c, errors.New("-duration must be at least 1s")
	case c.Runs < 1:
		return c, errors.New("-runs must be at least 1")
	case c.Conns < 1:
		return c, errors.New("-conns must be at least 1")
	}
	if !c.NoPin && runtime.NumCPU() < 2 {
		fmt.Fprintln(os.Stderr, "sidebyside: fewer than 2 CPUs, not pinning")
		c.NoPin = true
	}
	if c.Threads == 0 {
		c.Threads = 1
		if !c.NoPin {
			c.Threads = max(1, cpuCount(c.LoadCPUs))
		}
	}
	return c, nil
}

// subset parses a comma-separated list whose items must be in known, and
// returns them in known's order.
func subset(list string, known []string) ([]string, error) {
	var out []string
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if !slices.Contains(known, item) {
			return nil, fmt.Errorf("unknown %q (known: %s)", item, strings.Join(known, ", "))
		}
	}
	for _, k := range known {
		if slices.Contains(strings.Split(strings.ReplaceAll(list, " ", ""), ","), k) {
			out = append(out, k)
		}
	}
	return out, nil
}

// cpuCount counts the CPUs in a taskset list such as "0", "2,3" or "0-3".
func cpuCount(list string) int {
	n := 0
	for _, part := range strings.Split(list, ",") {
		var lo, hi int
		if _, err := fmt.Sscanf(part, "%d-%d", &lo, &hi); err == nil && hi >= lo {
			n += hi - lo + 1
		} else if part != "" {
			n++
		}
	}
	return n
}

// strategyTitle is how the report names a strategy.
func strategyTitle(s string) string {
	switch s {
	case "rr":
		return "round robin"
	case "least":
		return "least conn/request"
	case "hash":
		return "IP hash"
	}
	return s
}
