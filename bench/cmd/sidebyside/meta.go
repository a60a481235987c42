package main

import (
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/shoal-mesh/shoal/bench/internal/hostinfo"
)

// meta is the context a result needs to be read: the machine, the load
// on it, the tools' versions and the harness's settings.
type meta struct {
	Start     time.Time         `json:"start"`
	Kernel    string            `json:"kernel"`
	CPUModel  string            `json:"cpu_model"`
	NumCPU    int               `json:"num_cpu"`
	LoadAvg   string            `json:"load_avg_at_start"`
	GoVersion string            `json:"go_version"`
	ShoalRev  string            `json:"shoal_revision"`
	Versions  map[string]string `json:"versions"`
	Duration  time.Duration     `json:"duration_ns"`
	Warmup    time.Duration     `json:"warmup_ns"`
	Runs      int               `json:"runs"`
	Conns     int               `json:"conns"`
	Threads   int               `json:"wrk_threads"`
	H2        bool              `json:"h2,omitempty"`   // h2load, gRPC unary calls
	MTLS      bool              `json:"mtls,omitempty"` // two proxies with mTLS between them
	// AccessLog: every proxy with its access log; AccessLogAB: each
	// without and with.
	AccessLog   bool `json:"access_log,omitempty"`
	AccessLogAB bool `json:"access_log_ab,omitempty"`
	// Baseline is the second sidecar binary (-baseline-sidecar).
	Baseline   string   `json:"baseline_sidecar,omitempty"`
	Pinning    string   `json:"pinning"`
	Strategies []string `json:"strategies"`
}

func collectMeta(cfg Config) meta {
	m := meta{
		Start: time.Now(), NumCPU: runtime.NumCPU(), GoVersion: runtime.Version(),
		Duration: cfg.Duration, Warmup: cfg.Warmup, Runs: cfg.Runs, Conns: cfg.Conns,
		Threads: cfg.Threads, H2: cfg.H2, MTLS: cfg.MTLS, Strategies: cfg.Strategies, Versions: map[string]string{},
		AccessLog: cfg.AccessLog, AccessLogAB: cfg.AccessLogAB, Baseline: cfg.BaselineSidecar,
	}
	m.Kernel = "Linux " + hostinfo.FirstLine(hostinfo.ReadFile("/proc/sys/kernel/osrelease"))
	if f := strings.Fields(hostinfo.ReadFile("/proc/loadavg")); len(f) >= 3 {
		m.LoadAvg = strings.Join(f[:3], " ")
	}
	m.CPUModel = hostinfo.CPUModel()
	m.ShoalRev = hostinfo.FirstLine(hostinfo.Output("git", "rev-parse", "--short", "HEAD"))
	// run.sh builds from the work tree: say so when it differs from HEAD.
	if strings.TrimSpace(hostinfo.Output("git", "status", "--porcelain", "--untracked-files=no")) != "" {
		m.ShoalRev += "+uncommitted"
	}
	m.Versions["nginx"] = hostinfo.FirstLine(hostinfo.Output(cfg.NginxBin, "-v"))
	m.Versions["haproxy"] = hostinfo.FirstLine(hostinfo.Output(cfg.HAProxyBin, "-v"))
	m.Versions["wrk"] = hostinfo.FirstLine(hostinfo.Output(cfg.WrkBin, "--version"))
	m.Versions["shoal"] = hostinfo.FirstLine(hostinfo.Output(cfg.ShoalBin, "version"))
	if cfg.NoPin {
		m.Pinning = "Not pinned"
	} else {
		load := "wrk"
		if cfg.H2 {
			load = "h2load"
		}
		what := "Proxy"
		if cfg.MTLS {
			what = "Both proxies"
		}
		m.Pinning = what + " pinned to CPU " + cfg.ProxyCPUs + "; " + load + ", backends and control plane to CPU " + cfg.LoadCPUs
	}
	return m
}

func lookPath(name string) (string, error) { return exec.LookPath(name) }
