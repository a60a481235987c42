package main

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"
)

// target is one measured configuration: a proxy and its strategy.
type target struct {
	Name     string `json:"name"`     // as the report and -targets name it
	Proxy    string `json:"proxy"`    // nginx, haproxy, shoal
	Strategy string `json:"strategy"` // the proxy's own name for it
	// Floor: b does not stall during this target's runs. The fleet's
	// p99 then is the queueing the machine adds at this load whatever
	// the balancer, the reference the other targets' p99 are read
	// against.
	Floor bool `json:"floor,omitempty"`
}

// allTargets in report order; the first is the baseline for ratios.
var allTargets = []target{
	{Name: "nginx", Proxy: "nginx", Strategy: "least_conn"},
	{Name: "haproxy", Proxy: "haproxy", Strategy: "leastconn"},
	{Name: "shoal-rr", Proxy: "shoal", Strategy: "round_robin"},
	{Name: "shoal-least", Proxy: "shoal", Strategy: "least_request"},
	{Name: "shoal-loaded", Proxy: "shoal", Strategy: "least_loaded"},
	{Name: "nginx-floor", Proxy: "nginx", Strategy: "least_conn", Floor: true},
}

func (t target) String() string { return t.Proxy + " " + t.strategyLabel() }

// strategyLabel is the strategy as the report's table names it.
func (t target) strategyLabel() string {
	if t.Floor {
		return t.Strategy + ", b not stalling"
	}
	return t.Strategy
}

// Config is the harness's configuration; parseConfig fills it from flags.
type Config struct {
	Duration time.Duration // measured open-loop run per target and round
	Warmup   time.Duration // open-loop run at the same rate just before it
	Runs     int           // rounds; every target once per round
	Quick    bool

	Load     float64       // fraction of the measured capacity to send
	Rate     float64       // requests per second; 0: Load × measured capacity
	WorkMS   float64       // CPU per request in each instance, ms
	Stall    time.Duration // the stalling instance's block, every second
	StallCPU bool          // the block burns CPU instead of waiting
	CPUQuota float64       // the limited instance's CPUs (cgroup quota)

	CapacityConns    int           // closed-loop connections for the capacity run
	CapacityDuration time.Duration // its measured length
	Bucket           time.Duration // share-over-time bucket

	Targets []target

	ShoalBin, SidecarBin, NginxBin, HAProxyBin, NodeBin, GnuplotBin string
	NodePkg                                                         string // nodejs/ (the @shoal-mesh/node package)
	ResultsDir                                                      string
	WorkDir                                                         string
	KeepWork                                                        bool
}

func parseConfig(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("lbbench", flag.ContinueOnError)
	fs.DurationVar(&c.Duration, "duration", 20*time.Second, "measured open-loop run per target and round")
	fs.DurationVar(&c.Warmup, "warmup", 5*time.Second, "open-loop warmup at the same rate before each measured run (least_loaded's weights settle in it)")
	fs.IntVar(&c.Runs, "runs", 3, "rounds (interleaved, order rotated); medians are reported")
	fs.BoolVar(&c.Quick, "quick", false, "smoke run: 1 round of 6s after a 4s warmup, 2s capacity run")
	fs.Float64Var(&c.Load, "load", 0.7, "open-loop rate as a fraction of the measured capacity")
	fs.Float64Var(&c.Rate, "rate", 0, "open-loop rate in requests per second (skips the capacity run)")
	fs.Float64Var(&c.WorkMS, "work-ms", 1, "CPU time per request in each Node.js instance, ms")
	fs.DurationVar(&c.Stall, "stall", 150*time.Millisecond, "how long the stalling instance blocks its event loop every second")
	fs.BoolVar(&c.StallCPU, "stall-cpu", false, "the stalling instance burns CPU while blocked (by default it waits, as in a synchronous fs call, and leaves the shared cores to the other instances)")
	fs.Float64Var(&c.CPUQuota, "cpu-quota", 0.5, "CPUs the limited instance gets (cgroup cpu.max / cfs_quota_us)")
	fs.IntVar(&c.CapacityConns, "capacity-conns", 24, "connections of the closed-loop capacity run")
	fs.DurationVar(&c.CapacityDuration, "capacity-duration", 5*time.Second, "closed-loop capacity run (after 2s warmup)")
	fs.DurationVar(&c.Bucket, "bucket", time.Second, "share-over-time bucket for the chart")
	targets := fs.String("targets", "", "targets to measure (default all): "+targetNames(allTargets))
	fs.StringVar(&c.ShoalBin, "shoal", "bench/results/bin/shoal", "shoal binary (control plane, routes)")
	fs.StringVar(&c.SidecarBin, "sidecar", "", "binary that runs `shoal sidecar` (default: -shoal)")
	fs.StringVar(&c.NginxBin, "nginx", "nginx", "nginx binary")
	fs.StringVar(&c.HAProxyBin, "haproxy", "haproxy", "haproxy binary")
	fs.StringVar(&c.NodeBin, "node", "node", "node binary")
	fs.StringVar(&c.GnuplotBin, "gnuplot", "gnuplot", "gnuplot binary for the chart (none: no chart)")
	fs.StringVar(&c.NodePkg, "nodejs", "nodejs", "the @shoal-mesh/node package directory")
	fs.StringVar(&c.ResultsDir, "results", "bench/results", "directory for JSON, markdown and the chart")
	fs.StringVar(&c.WorkDir, "work", "", "working directory for configs and logs (default: a temp dir)")
	fs.BoolVar(&c.KeepWork, "keep-work", false, "keep the working directory: logs of every process, each measured run's requests (requests.csv: due time, latency, instance) and least_loaded's load reports and picker weights every second (reports.csv)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.Quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		defaults := map[string]func(){
			"duration":          func() { c.Duration = 6 * time.Second },
			"warmup":            func() { c.Warmup = 4 * time.Second },
			"runs":              func() { c.Runs = 1 },
			"capacity-duration": func() { c.CapacityDuration = 2 * time.Second },
		}
		for name, f := range defaults {
			if !set[name] {
				f()
			}
		}
	}
	var err error
	if c.Targets, err = parseTargets(*targets); err != nil {
		return c, fmt.Errorf("-targets: %w", err)
	}
	switch {
	case c.Duration < time.Second:
		return c, errors.New("-duration must be at least 1s")
	case c.Warmup < 0:
		return c, errors.New("-warmup must not be negative")
	case c.Runs < 1:
		return c, errors.New("-runs must be at least 1")
	case !(c.Load > 0 && c.Load <= 2):
		return c, fmt.Errorf("-load %v must be in (0, 2]", c.Load)
	case c.Rate < 0:
		return c, errors.New("-rate must not be negative")
	case !(c.WorkMS > 0):
		return c, errors.New("-work-ms must be positive")
	case c.Stall < 0 || c.Stall >= time.Second:
		return c, fmt.Errorf("-stall %v must be in [0, 1s)", c.Stall)
	case !(c.CPUQuota > 0):
		return c, errors.New("-cpu-quota must be positive")
	case c.CapacityConns < 1:
		return c, errors.New("-capacity-conns must be at least 1")
	case c.Bucket < 100*time.Millisecond:
		return c, errors.New("-bucket must be at least 100ms")
	}
	return c, nil
}

func parseTargets(list string) ([]target, error) {
	if strings.TrimSpace(list) == "" {
		return allTargets, nil
	}
	names := strings.Split(strings.ReplaceAll(list, " ", ""), ",")
	for _, n := range names {
		if n != "" && !slices.ContainsFunc(allTargets, func(t target) bool { return t.Name == n }) {
			return nil, fmt.Errorf("unknown target %q (known: %s)", n, targetNames(allTargets))
		}
	}
	var out []target
	for _, t := range allTargets {
		if slices.Contains(names, t.Name) {
			out = append(out, t)
		}
	}
	return out, nil
}

func targetNames(ts []target) string {
	var names []string
	for _, t := range ts {
		names = append(names, t.Name)
	}
	return strings.Join(names, ",")
}

func (c *Config) sidecarBin() string {
	if c.SidecarBin != "" {
		return c.SidecarBin
	}
	return c.ShoalBin
}
