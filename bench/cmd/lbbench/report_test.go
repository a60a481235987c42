package main

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func run(name string, round int, p99 float64, errs int64) measurement {
	return measurement{Target: target{Name: name}, Round: round, P99: p99, ErrorCount: errs, Sent: 1000,
		Shares: map[string]float64{"a": 0.5, "b": 0.3, "c": 0.2}}
}

func TestRatioPairsRoundsAndTakesTheMedian(t *testing.T) {
	runs := []measurement{
		run("nginx", 0, 100, 0), run("shoal-loaded", 0, 40, 0), // 0.4
		run("nginx", 1, 200, 0), run("shoal-loaded", 1, 60, 0), // 0.3
		run("nginx", 2, 50, 0), run("shoal-loaded", 2, 100, 0), // 2.0
		{Target: target{Name: "shoal-loaded"}, Round: 3, Err: "failed"}, // not counted
	}
	rep := newReport(meta{}, allTargets, runs)
	if got := rep.ratio("shoal-loaded", "nginx"); got != 0.4 {
		t.Errorf("ratio = %v, want 0.4, the median of the per-round ratios 0.4, 0.3 and 2.0", got)
	}
	if got := rep.ratio("shoal-loaded", "haproxy"); got != 0 {
		t.Errorf("ratio against a target never measured = %v, want 0", got)
	}
}

func TestVerdict(t *testing.T) {
	tests := []struct {
		name           string
		ll, ng, ha     float64
		llErr, otherEr int64
		want           string
	}{
		{"half of both, no errors", 50, 100, 120, 0, 0, "**met**"},
		{"above half of nginx's", 60, 100, 200, 0, 0, "p99 above half of nginx's"},
		{"more errors", 10, 100, 100, 3, 1, "more errors"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := newReport(meta{}, allTargets, []measurement{
				run("nginx", 0, tc.ng, tc.otherEr), run("haproxy", 0, tc.ha, tc.otherEr), run("shoal-loaded", 0, tc.ll, tc.llErr),
			})
			if got := rep.verdict(); !strings.Contains(got, tc.want) {
				t.Errorf("verdict = %q, want it to say %q", got, tc.want)
			}
		})
	}
	if got := newReport(meta{}, allTargets, []measurement{run("nginx", 0, 1, 0)}).verdict(); !strings.Contains(got, "not measured") {
		t.Errorf("verdict without least_loaded = %q, want not measured", got)
	}
}

// A run without HAProxy names only the nginx ratio (not "over HAProxy's:
// 0.00").
func TestRatiosNameOnlyWhatWasMeasured(t *testing.T) {
	md := newReport(meta{}, allTargets, []measurement{run("nginx", 0, 10, 0), run("shoal-loaded", 0, 5, 0)}).markdown()
	if !strings.Contains(md, "over nginx least_conn's: 0.50") || strings.Contains(md, "HAProxy leastconn's") {
		t.Errorf("report without HAProxy:\n%s", md)
	}
}

// The floor line says when half of nginx's p99 is below the p99 of the
// fleet without the stall.
func TestFloorLine(t *testing.T) {
	md := newReport(meta{}, allTargets, []measurement{run("nginx", 0, 8, 0), run("nginx-floor", 0, 5, 0)}).markdown()
	if !strings.Contains(md, "half of nginx's p99 with the stall is 4.0 ms: **below the floor**") || !strings.Contains(md, "| nginx | least_conn, b not stalling | ") {
		t.Errorf("report with the floor target:\n%s", md)
	}
	md = newReport(meta{}, allTargets, []measurement{run("nginx", 0, 8, 0)}).markdown()
	if strings.Contains(md, "The floor") {
		t.Errorf("report without the floor target names it:\n%s", md)
	}
}

func TestShareDataSkipsEmptyBuckets(t *testing.T) {
	m := measurement{Target: target{Proxy: "nginx", Strategy: "least_conn"}, Buckets: []map[string]int64{
		{"a": 3, "b": 1}, {}, {"c": 2},
	}}
	got := shareData([]measurement{m}, []string{"a", "b", "c"}, time.Second)
	want := "# nginx least_conn\n0.50 75.00 25.00 0.00\n2.50 0.00 0.00 100.00\n"
	if got != want {
		t.Errorf("shareData = %q, want %q", got, want)
	}
}

func TestParseConfig(t *testing.T) {
	c, err := parseConfig([]string{"-quick", "-targets", "shoal-loaded,nginx"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Runs != 1 || c.Duration != 6*time.Second || c.Warmup != 4*time.Second {
		t.Errorf("-quick: runs %d, duration %v, warmup %v; want 1, 6s, 4s", c.Runs, c.Duration, c.Warmup)
	}
	if len(c.Targets) != 2 || c.Targets[0].Name != "nginx" || c.Targets[1].Name != "shoal-loaded" {
		t.Errorf("targets = %v, want nginx then shoal-loaded (report order)", c.Targets)
	}
	for _, args := range [][]string{{"-targets", "envoy"}, {"-load", "0"}, {"-stall", "1s"}, {"-cpu-quota", "0"}} {
		if _, err := parseConfig(args); err == nil {
			t.Errorf("parseConfig(%q) succeeded, want an error", args)
		}
	}
}
