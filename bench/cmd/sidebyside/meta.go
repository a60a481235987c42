package main

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
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
	m.Kernel = "Linux " + firstLine(readFile("/proc/sys/kernel/osrelease"))
	if f := strings.Fields(readFile("/proc/loadavg")); len(f) >= 3 {
		m.LoadAvg = strings.Join(f[:3], " ")
	}
	m.CPUModel = cpuModel()
	m.ShoalRev = firstLine(output("git", "rev-parse", "--short", "HEAD"))
	// run.sh builds from the work tree: say so when it differs from HEAD.
	if strings.TrimSpace(output("git", "status", "--porcelain", "--untracked-files=no")) != "" {
		m.ShoalRev += "+uncommitted"
	}
	m.Versions["nginx"] = firstLine(output(cfg.NginxBin, "-v"))
	m.Versions["haproxy"] = firstLine(output(cfg.HAProxyBin, "-v"))
	m.Versions["wrk"] = firstLine(output(cfg.WrkBin, "--version"))
	m.Versions["shoal"] = firstLine(output(cfg.ShoalBin, "version"))
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

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// output runs a version command; some tools print to stderr or exit
// non-zero (wrk --version), so both streams are taken and errors ignored.
func output(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	return string(out)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func lookPath(name string) (string, error) { return exec.LookPath(name) }
