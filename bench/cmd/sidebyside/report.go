package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// summary is a target's medians over its successful runs.
type summary struct {
	Target      target  `json:"target"`
	Runs        int     `json:"runs_ok"`
	Failed      int     `json:"runs_failed"`
	RPS         float64 `json:"rps"`
	P50us       float64 `json:"p50_us"`
	P99us       float64 `json:"p99_us"`
	CPUusPerReq float64 `json:"proxy_cpu_us_per_request"`
	RSSKB       float64 `json:"proxy_rss_kb"`
	// Shares are the median per-backend fractions of requests.
	Shares []float64 `json:"backend_shares"`
	Errors []string  `json:"errors,omitempty"`
	Notes  []string  `json:"notes,omitempty"`
}

type report struct {
	Meta      meta        `json:"meta"`
	Summaries []summary   `json:"summaries"`
	Runs      []runResult `json:"runs"`
}

func newReport(m meta, targets []target, runs []runResult) *report {
	rep := &report{Meta: m, Runs: runs}
	for _, t := range targets {
		rep.Summaries = append(rep.Summaries, summarize(t, runs))
	}
	return rep
}

func summarize(t target, runs []runResult) summary {
	s := summary{Target: t}
	var rps, p50, p99, cpu, rss []float64
	var shares [][]float64
	for _, r := range runs {
		if !r.Target.same(t) {
			continue
		}
		if r.Err != "" {
			s.Failed++
			s.Errors = appendUnique(s.Errors, r.Err)
			continue
		}
		s.Runs++
		if r.Note != "" {
			s.Notes = appendUnique(s.Notes, r.Note)
		}
		rps = append(rps, r.Wrk.RPS)
		p50 = append(p50, r.Wrk.P50us)
		p99 = append(p99, r.Wrk.P99us)
		cpu = append(cpu, r.CPUusPerReq)
		rss = append(rss, float64(r.RSSKB))
		shares = append(shares, fractions(r.BackendShares))
	}
	s.RPS, s.P50us, s.P99us = median(rps), median(p50), median(p99)
	s.CPUusPerReq, s.RSSKB = median(cpu), median(rss)
	if len(shares) > 0 {
		for i := range shares[0] {
			var col []float64
			for _, sh := range shares {
				col = append(col, sh[i])
			}
			s.Shares = append(s.Shares, median(col))
		}
	}
	return s
}

func appendUnique(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func fractions(counts []int64) []float64 {
	var total int64
	for _, c := range counts {
		total += c
	}
	out := make([]float64, len(counts))
	for i, c := range counts {
		if total > 0 {
			out[i] = float64(c) / float64(total)
		}
	}
	return out
}

// median of xs; 0 when xs is empty (JSON has no NaN; the report checks
// the run count instead).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func (rep *report) find(proxy, strategy string) *summary {
	for i := range rep.Summaries {
		t := rep.Summaries[i].Target
		if t.Proxy == proxy && t.Strategy == strategy {
			return &rep.Summaries[i]
		}
	}
	return nil
}

// markdown renders the medians table, the ratios and the run's context.
func (rep *report) markdown() string {
	var b strings.Builder
	m := rep.Meta
	fmt.Fprintf(&b, "## shoal side-by-side (%s)\n\n", m.Start.Format(time.RFC3339))
	fmt.Fprintf(&b, "shoal %s, %s; %s; %d CPUs (%s); load average at start %s. ",
		m.ShoalRev, m.Versions["nginx"], m.Kernel, m.NumCPU, m.CPUModel, m.LoadAvg)
	load := fmt.Sprintf("wrk -t%d -c%d", m.Threads, m.Conns)
	if m.H2 {
		// rps are calls/s, µs/req per call.
		load = fmt.Sprintf("h2c gRPC unary calls (%s): h2load -t%d -c%d -m4", grpcCheckPath, m.Threads, m.Conns)
	}
	fmt.Fprintf(&b, "%s, %s measured after %s warmup, %d interleaved rounds, medians. %s.\n\n",
		load, m.Duration, m.Warmup, m.Runs, m.Pinning)
	if m.MTLS {
		b.WriteString("mTLS hop: wrk → proxy A (plain) → TLS 1.3 with client certificates, keep-alive, " + mtlsSuite +
			", ECDSA P-256 → proxy B → one backend. Every proxy row is two processes (A and B, one worker each): " +
			"CPU µs/req and RSS are their sum; direct is wrk → the backend.\n\n")
	}
	b.WriteString("| proxy | strategy | rps | p50 | p99 | p99 added | proxy CPU µs/req | proxy RSS MiB | backend spread | runs |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|---|--:|\n")
	direct := rep.find("direct", "")
	for _, s := range rep.Summaries {
		rep.row(&b, s, direct)
	}
	b.WriteString("\n")
	rep.ratios(&b)
	rep.footnotes(&b)
	return b.String()
}

func (rep *report) row(b *strings.Builder, s summary, direct *summary) {
	strategy := "—"
	if s.Target.Strategy != "" {
		strategy = strategyTitle(s.Target.Strategy)
	}
	switch {
	case s.Target.Unavailable != "":
		fmt.Fprintf(b, "| %s | %s | not available: %s |  |  |  |  |  |  | 0 |\n", s.Target.Proxy, strategy, oneLine(s.Target.Unavailable))
		return
	case s.Runs == 0:
		fmt.Fprintf(b, "| %s | %s | failed: %s |  |  |  |  |  |  | 0/%d |\n", s.Target.Proxy, strategy, oneLine(first(s.Errors)), s.Failed)
		return
	}
	added, cpu, rss := "—", "—", "—"
	if s.Target.Proxy != "direct" {
		cpu = fmt.Sprintf("%.1f", s.CPUusPerReq)
		rss = fmt.Sprintf("%.1f", s.RSSKB/1024)
		if direct != nil && direct.Runs > 0 {
			added = fmtUS(s.P99us - direct.P99us)
		}
	}
	runs := fmt.Sprint(s.Runs)
	if s.Failed > 0 {
		runs = fmt.Sprintf("%d (+%d failed)", s.Runs, s.Failed)
	}
	proxy := s.Target.Proxy
	if s.Target.Log {
		proxy += " + access log"
	}
	fmt.Fprintf(b, "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", proxy, strategy,
		s.RPS, fmtUS(s.P50us), fmtUS(s.P99us), added, cpu, rss, spreadF(s.Shares), runs)
}

// ratios prints shoal/nginx and shoal/HAProxy per strategy: CPU per
// request and p99 below 1.0 and rps above 1.0 favour shoal. Each ratio is
// the median of per-round ratios: the targets of one round ran back to
// back, so pairing them cancels most of the machine's drift between
// rounds (a busy neighbour, thermal state) that would otherwise move the
// medians of the two targets apart.
func (rep *report) ratios(b *strings.Builder) {
	b.WriteString("| strategy | CPU/req shoal/nginx | p99 shoal/nginx | rps shoal/nginx | CPU/req shoal/HAProxy | p99 shoal/HAProxy | rps shoal/HAProxy |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|\n")
	logs := []bool{rep.Meta.AccessLog}
	if rep.Meta.AccessLogAB {
		logs = []bool{false, true}
	}
	for _, lg := range logs {
		for _, st := range rep.Meta.Strategies {
			r := func(other string, f func(runResult) float64) string {
				return rep.pairedRatio(target{Proxy: "shoal", Strategy: st, Log: lg}, target{Proxy: other, Strategy: st, Log: lg}, f)
			}
			title := strategyTitle(st)
			if lg {
				title += ", access logs on"
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", title,
				r("nginx", cpuOf), r("nginx", p99Of), r("nginx", rpsOf),
				r("haproxy", cpuOf), r("haproxy", p99Of), r("haproxy", rpsOf))
		}
	}
	b.WriteString("\nEach ratio is the median over rounds of shoal's run divided by the other proxy's run in the same round. ")
	b.WriteString("CPU/req and p99 ratios ≤ 1.00 and rps ratios ≥ 1.00 mean shoal is at least as good.\n")
	if rep.Meta.AccessLogAB {
		rep.logCost(b)
	}
	if rep.Meta.Baseline != "" {
		rep.baselineCost(b, logs)
	}
}

// baselineCost prints shoal against the baseline sidecar binary, paired
// per round.
func (rep *report) baselineCost(b *strings.Builder, logs []bool) {
	fmt.Fprintf(b, "\n| strategy | CPU/req shoal/shoal-base | p99 shoal/shoal-base | rps shoal/shoal-base |\n|---|--:|--:|--:|\n")
	for _, lg := range logs {
		for _, st := range rep.Meta.Strategies {
			r := func(f func(runResult) float64) string {
				return rep.pairedRatio(target{Proxy: "shoal", Strategy: st, Log: lg}, target{Proxy: "shoal-base", Strategy: st, Log: lg}, f)
			}
			title := strategyTitle(st)
			if lg {
				title += ", access logs on"
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s |\n", title, r(cpuOf), r(p99Of), r(rpsOf))
		}
	}
	fmt.Fprintf(b, "\nshoal-base is %s, run beside shoal in every round.\n", rep.Meta.Baseline)
}

// logCost prints each proxy's CPU per request and p99 with its access
// log divided by without, paired per round like the other ratios.
func (rep *report) logCost(b *strings.Builder) {
	b.WriteString("\n| strategy | CPU/req shoal log/no log | CPU/req nginx log/no log | p99 shoal log/no log | p99 nginx log/no log |\n")
	b.WriteString("|---|--:|--:|--:|--:|\n")
	for _, st := range rep.Meta.Strategies {
		r := func(proxy string, f func(runResult) float64) string {
			return rep.pairedRatio(target{Proxy: proxy, Strategy: st, Log: true}, target{Proxy: proxy, Strategy: st}, f)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", strategyTitle(st),
			r("shoal", cpuOf), r("nginx", cpuOf), r("shoal", p99Of), r("nginx", p99Of))
	}
	b.WriteString("\nThe access log's own cost: each proxy's run with its access log divided by its run without in the same round.\n")
}

func cpuOf(r runResult) float64 { return r.CPUusPerReq }
func p99Of(r runResult) float64 { return r.Wrk.P99us }
func rpsOf(r runResult) float64 { return r.Wrk.RPS }

// pairedRatio is the median over rounds of f(a's run)/f(b's run) in the
// same round, "n/a" when no round has both.
func (rep *report) pairedRatio(a, b target, f func(runResult) float64) string {
	byRound := map[int]runResult{}
	for _, r := range rep.Runs {
		if r.Err == "" && r.Target.same(b) {
			byRound[r.Round] = r
		}
	}
	var xs []float64
	for _, r := range rep.Runs {
		if r.Err != "" || !r.Target.same(a) {
			continue
		}
		if o, ok := byRound[r.Round]; ok && f(o) > 0 {
			xs = append(xs, f(r)/f(o))
		}
	}
	if len(xs) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", median(xs))
}

func (rep *report) footnotes(b *strings.Builder) {
	var notes []string
	for _, s := range rep.Summaries {
		for _, n := range s.Notes {
			notes = append(notes, fmt.Sprintf("%s: %s", s.Target, n))
		}
		if s.Runs > 0 {
			for _, e := range s.Errors {
				notes = append(notes, fmt.Sprintf("%s: a run failed: %s", s.Target, oneLine(e)))
			}
		}
	}
	if len(notes) == 0 {
		return
	}
	b.WriteString("\nNotes:\n")
	for _, n := range notes {
		fmt.Fprintf(b, "- %s\n", n)
	}
}

func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.ReplaceAll(s, "|", "/")
}

func first(xs []string) string {
	if len(xs) == 0 {
		return ""
	}
	return xs[0]
}

// fmtUS formats microseconds as wrk does: µs below 1ms, ms below 1s.
func fmtUS(us float64) string {
	switch {
	case math.IsNaN(us):
		return "—"
	case math.Abs(us) < 1000:
		return fmt.Sprintf("%.0fµs", us)
	case math.Abs(us) < 1e6:
		return fmt.Sprintf("%.2fms", us/1e3)
	}
	return fmt.Sprintf("%.2fs", us/1e6)
}

func spread(counts []int64) string { return spreadF(fractions(counts)) }

// spreadF renders backend shares as whole percentages, "34/33/33".
func spreadF(shares []float64) string {
	if len(shares) == 0 {
		return "—"
	}
	parts := make([]string, len(shares))
	for i, s := range shares {
		parts[i] = fmt.Sprintf("%.0f", 100*s)
	}
	return strings.Join(parts, "/")
}

// save writes the report as JSON and markdown under dir, named by start
// time, and refreshes latest.json and latest.md.
func (rep *report) save(dir, md string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	stamp := rep.Meta.Start.Format("20060102-150405")
	for name, data := range map[string][]byte{
		"sidebyside-" + stamp + ".json": js, "sidebyside-" + stamp + ".md": []byte(md),
		"latest.json": js, "latest.md": []byte(md),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "sidebyside: results in %s\n", filepath.Join(dir, "sidebyside-"+stamp+".{json,md}"))
	return nil
}
