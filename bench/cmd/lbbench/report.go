package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/shoal-mesh/shoal/bench/internal/hostinfo"
)

// meta is what a result needs to be read: the machine, its load, the
// tools and the settings.
type meta struct {
	Start      time.Time         `json:"start"`
	Kernel     string            `json:"kernel"`
	CPUModel   string            `json:"cpu_model"`
	NumCPU     int               `json:"num_cpu"`
	LoadAvg    string            `json:"load_avg_at_start"`
	LoadAvgEnd string            `json:"load_avg_at_end"`
	ShoalRev   string            `json:"shoal_revision"`
	Versions   map[string]string `json:"versions"`
	Duration   time.Duration     `json:"duration_ns"`
	Warmup     time.Duration     `json:"warmup_ns"`
	Runs       int               `json:"runs"`
	WorkMS     float64           `json:"work_ms"`
	Stall      time.Duration     `json:"stall_ns"`
	Load       float64           `json:"load"`
	Capacity   float64           `json:"capacity_rps,omitempty"`
	Rate       float64           `json:"rate_rps"`
	CPULimit   string            `json:"cpu_limit"`
	Instances  []*instance       `json:"instances"`
}

func collectMeta(cfg Config) meta {
	m := meta{Start: time.Now(), NumCPU: runtime.NumCPU(), Duration: cfg.Duration, Warmup: cfg.Warmup,
		Runs: cfg.Runs, WorkMS: cfg.WorkMS, Stall: cfg.Stall, Load: cfg.Load, Versions: map[string]string{}}
	m.Kernel = "Linux " + hostinfo.FirstLine(hostinfo.ReadFile("/proc/sys/kernel/osrelease"))
	m.LoadAvg = hostinfo.LoadAvg()
	m.CPUModel = hostinfo.CPUModel()
	m.ShoalRev = hostinfo.FirstLine(hostinfo.Output("git", "rev-parse", "--short", "HEAD"))
	if strings.TrimSpace(hostinfo.Output("git", "status", "--porcelain", "--untracked-files=no")) != "" {
		m.ShoalRev += "+uncommitted"
	}
	m.Versions["nginx"] = hostinfo.FirstLine(hostinfo.Output(cfg.NginxBin, "-v"))
	m.Versions["haproxy"] = hostinfo.FirstLine(hostinfo.Output(cfg.HAProxyBin, "-v"))
	m.Versions["node"] = hostinfo.FirstLine(hostinfo.Output(cfg.NodeBin, "--version"))
	return m
}

// report is the medians over rounds per target and the ratios.
type report struct {
	Meta    meta          `json:"meta"`
	Runs    []measurement `json:"runs"`
	Targets []summary     `json:"summary"`
	// P99VsNginx and P99VsHAProxy are least_loaded's p99 over nginx's and
	// HAProxy's of the same round, median over rounds (0: not measured).
	P99VsNginx   float64 `json:"least_loaded_p99_over_nginx"`
	P99VsHAProxy float64 `json:"least_loaded_p99_over_haproxy"`
	Chart        string  `json:"chart,omitempty"`
}

// summary is one target's medians over its successful rounds.
type summary struct {
	Target     target             `json:"target"`
	Rounds     int                `json:"rounds"`
	P50        float64            `json:"p50_ms"`
	P99        float64            `json:"p99_ms"`
	P999       float64            `json:"p999_ms"`
	Errors     int64              `json:"errors_all_rounds"`
	Sent       int64              `json:"sent_all_rounds"`
	Shares     map[string]float64 `json:"shares"`
	P99VsNginx float64            `json:"p99_over_nginx"`
	// LateMS is the generator's worst lag behind its schedule over the
	// rounds: large means the machine, not the proxy, set the latency.
	LateMS float64  `json:"generator_late_ms"`
	Failed []string `json:"failed,omitempty"`
}

func newReport(m meta, targets []target, runs []measurement) *report {
	m.LoadAvgEnd = hostinfo.LoadAvg()
	rep := &report{Meta: m, Runs: runs}
	for _, t := range targets {
		s := summary{Target: t, Shares: map[string]float64{}}
		var p50, p99, p999 []float64
		shares := map[string][]float64{}
		for _, r := range runs {
			if r.Target.Name != t.Name {
				continue
			}
			if r.Err != "" {
				s.Failed = append(s.Failed, r.Err)
				continue
			}
			s.Rounds++
			p50, p99, p999 = append(p50, r.P50), append(p99, r.P99), append(p999, r.P999)
			s.Errors += r.ErrorCount
			s.Sent += r.Sent
			s.LateMS = max(s.LateMS, r.LateMS)
			for id, v := range r.Shares {
				shares[id] = append(shares[id], v)
			}
		}
		s.P50, s.P99, s.P999 = median(p50), median(p99), median(p999)
		for id, v := range shares {
			s.Shares[id] = median(v)
		}
		s.P99VsNginx = rep.ratio(t.Name, "nginx")
		rep.Targets = append(rep.Targets, s)
	}
	rep.P99VsNginx = rep.ratio("shoal-loaded", "nginx")
	rep.P99VsHAProxy = rep.ratio("shoal-loaded", "haproxy")
	return rep
}

// ratio is the median over rounds of a's p99 over b's in the same round:
// the runs of a round are close in time, so pairing them cancels most of
// the drift a shared machine adds between rounds.
func (rep *report) ratio(a, b string) float64 {
	byRound := map[int]map[string]float64{}
	for _, r := range rep.Runs {
		if r.Err != "" {
			continue
		}
		if byRound[r.Round] == nil {
			byRound[r.Round] = map[string]float64{}
		}
		byRound[r.Round][r.Target.Name] = r.P99
	}
	var xs []float64
	for _, m := range byRound {
		if pa, ok := m[a]; ok && m[b] > 0 {
			xs = append(xs, pa/m[b])
		}
	}
	return median(xs)
}

func (rep *report) markdown() string {
	var b strings.Builder
	m := rep.Meta
	fmt.Fprintf(&b, "## Load balancing over unequal Node.js instances (%s)\n\n", m.Start.Format("2006-01-02 15:04"))
	fmt.Fprintf(&b, "%s, %d CPUs, %s; load average %s at start, %s at end; shoal %s; %s; %s; node %s.\n\n",
		m.CPUModel, m.NumCPU, m.Kernel, m.LoadAvg, m.LoadAvgEnd, m.ShoalRev, m.Versions["nginx"], m.Versions["haproxy"], m.Versions["node"])
	for _, in := range m.Instances {
		fmt.Fprintf(&b, "- instance %s: %s\n", in.ID, in.Role)
	}
	fmt.Fprintf(&b, "- %g ms of CPU per request; %s\n", m.WorkMS, m.CPULimit)
	if m.Capacity > 0 {
		fmt.Fprintf(&b, "- capacity %.0f rps (closed loop through nginx least_conn); open-loop rate %.0f rps (%.0f %%)\n", m.Capacity, m.Rate, m.Load*100)
	} else {
		fmt.Fprintf(&b, "- open-loop rate %.0f rps (given)\n", m.Rate)
	}
	fmt.Fprintf(&b, "- %d round(s) × %v measured after %v warmup per target, order rotated each round; medians over rounds; latency from the intended send time\n\n",
		m.Runs, m.Duration, m.Warmup)
	ids := make([]string, 0, len(m.Instances))
	for _, in := range m.Instances {
		ids = append(ids, in.ID)
	}
	b.WriteString("| proxy | strategy | p50 ms | p99 ms | p99.9 ms | errors | share " + strings.Join(ids, " / ") + " | p99 / nginx's | generator lag ms |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, s := range rep.Targets {
		if s.Rounds == 0 {
			fmt.Fprintf(&b, "| %s | %s | failed: %s |||||\n", s.Target.Proxy, s.Target.strategyLabel(), hostinfo.FirstLine(strings.Join(s.Failed, "; ")))
			continue
		}
		var sh []string
		for _, id := range ids {
			sh = append(sh, fmt.Sprintf("%.0f", s.Shares[id]*100))
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f | %.1f | %.1f | %d of %d | %s %% | %.2f | %.0f |\n", s.Target.Proxy, s.Target.strategyLabel(),
			s.P50, s.P99, s.P999, s.Errors, s.Sent, strings.Join(sh, " / "), s.P99VsNginx, s.LateMS)
	}
	b.WriteString("\n")
	if late := rep.maxLate(); late > 10 {
		fmt.Fprintf(&b, "**The generator fell up to %.0f ms behind its schedule**: the machine was too busy for these latencies to be the proxies' (rerun on a quiet machine).\n\n", late)
	}
	if s := rep.ratios(); s != "" {
		fmt.Fprintf(&b, "least_loaded p99 %s (median of per-round ratios). Goal ≤ 0.50 with no more errors: %s\n\n", s, rep.verdict())
	}
	if s := rep.floor(); s != "" {
		b.WriteString(s + "\n\n")
	}
	for _, r := range rep.Runs {
		if r.Target.Name != "shoal-loaded" || len(r.Reports) == 0 {
			continue
		}
		var parts []string
		for _, id := range ids {
			if lr, ok := r.Reports[id]; ok {
				parts = append(parts, fmt.Sprintf("%s utilization %.2f at %.0f rps (A58 weight %.0f, picker weight %.0f)", id, lr.Utilization, lr.RPS, lr.Weight, lr.PickerWeight))
			}
		}
		fmt.Fprintf(&b, "- least_loaded round %d, load reports as the sidecar saw them (medians): %s\n", r.Round+1, strings.Join(parts, "; "))
	}
	b.WriteString("\n")
	if rep.Chart != "" {
		fmt.Fprintf(&b, "Chart of per-instance shares over time (last round): %s\n", rep.Chart)
	}
	return b.String()
}

func (rep *report) maxLate() float64 {
	var late float64
	for _, s := range rep.Targets {
		late = max(late, s.LateMS)
	}
	return late
}

// measured returns the summary of the target named name, nil unless it
// was measured in at least one round.
func (rep *report) measured(name string) *summary {
	for i := range rep.Targets {
		if s := &rep.Targets[i]; s.Target.Name == name && s.Rounds > 0 {
			return s
		}
	}
	return nil
}

// floor compares half of nginx's p99 with the floor target's (nginx with
// b not stalling): "" unless both were measured.
func (rep *report) floor() string {
	ng, fl := rep.measured("nginx"), rep.measured("nginx-floor")
	if ng == nil || fl == nil {
		return ""
	}
	s := fmt.Sprintf("The floor: nginx least_conn with b not stalling has p99 %.1f ms at the same rate; half of nginx's p99 with the stall is %.1f ms", fl.P99, ng.P99/2)
	if ng.P99/2 < fl.P99 {
		return s + ": **below the floor**, the queueing this machine adds at this load whatever the balancer (on a machine with a core per instance the floor is lower)."
	}
	return s + "."
}

// ratios names least_loaded's p99 ratios that were measured ("" if none).
func (rep *report) ratios() string {
	var parts []string
	if rep.P99VsNginx > 0 {
		parts = append(parts, fmt.Sprintf("over nginx least_conn's: %.2f", rep.P99VsNginx))
	}
	if rep.P99VsHAProxy > 0 {
		parts = append(parts, fmt.Sprintf("over HAProxy leastconn's: %.2f", rep.P99VsHAProxy))
	}
	return strings.Join(parts, ", ")
}

// verdict says whether least_loaded met issue 17's goal in this run.
func (rep *report) verdict() string {
	ll, ng, ha := rep.measured("shoal-loaded"), rep.measured("nginx"), rep.measured("haproxy")
	if ll == nil || ng == nil || ha == nil {
		return "not measured (needs shoal-loaded, nginx and haproxy)"
	}
	var why []string
	if rep.P99VsNginx > 0.5 {
		why = append(why, "p99 above half of nginx's")
	}
	if rep.P99VsHAProxy > 0.5 {
		why = append(why, "p99 above half of HAProxy's")
	}
	if ll.Errors > min(ng.Errors, ha.Errors) {
		why = append(why, "more errors")
	}
	if len(why) == 0 {
		return "**met**"
	}
	return "**not met** (" + strings.Join(why, ", ") + ")"
}

// save writes the JSON, the markdown and the chart to the results dir,
// under a timestamped name and as latest-lb.*.
func (rep *report) save(cfg Config, md string) error {
	if err := os.MkdirAll(cfg.ResultsDir, 0o755); err != nil {
		return err
	}
	stamp := rep.Meta.Start.Format("20060102-150405")
	png := filepath.Join(cfg.ResultsDir, "lb-share-"+stamp+".png")
	if err := plotShares(cfg, rep, png); err != nil {
		fmt.Fprintln(os.Stderr, "lbbench: no chart:", err)
	} else {
		rep.Chart = png
		md = rep.markdown()
		copyFile(png, filepath.Join(cfg.ResultsDir, "latest-lb-share.png"))
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	for _, name := range []string{"lb-" + stamp, "latest-lb"} {
		if err := os.WriteFile(filepath.Join(cfg.ResultsDir, name+".json"), js, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(cfg.ResultsDir, name+".md"), []byte(md), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) {
	if b, err := os.ReadFile(from); err == nil {
		os.WriteFile(to, b, 0o644)
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func sharesString(sh map[string]float64) string {
	ids := make([]string, 0, len(sh))
	for id := range sh {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var parts []string
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", id, sh[id]*100))
	}
	return strings.Join(parts, " ")
}
