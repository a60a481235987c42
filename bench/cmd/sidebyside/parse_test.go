package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const wrkOutput = `Running 10s test @ http://127.0.0.1:8080/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   815.09us  312.11us  12.34ms   91.22%
    Req/Sec    61.2k     2.1k   65.0k    80.00%
  Latency Distribution
     50%  761.00us
     75%  850.00us
     90%    1.02ms
     99%    2.10ms
  612345 requests in 10.00s, 60.11MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  61234.50
Transfer/sec:      6.01MB
`

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    wrkResult
		wantErr string
	}{
		{
			name: "reads counts, rate, percentiles and errors",
			out:  wrkOutput,
			want: wrkResult{Requests: 612345, RPS: 61234.5, P50us: 761, P90us: 1020, P99us: 2100, SocketErrs: 5, Non2xx: 7},
		},
		{
			name:    "fails without the latency distribution",
			out:     "  10 requests in 1.00s, 1KB read\nRequests/sec:  10.00\n",
			wantErr: "lacks",
		},
		{
			name:    "fails on a malformed percentile",
			out:     "  Latency Distribution\n     99%  2.10xs\n",
			wantErr: "percentile",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseWrk(tc.out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseWrk() error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseWrk() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"is zero for no values", nil, 0},
		{"is the middle of an odd count", []float64{3, 1, 2}, 2},
		{"is the mean of the middle two of an even count", []float64{4, 1, 3, 2}, 2.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := median(tc.in); got != tc.want {
				t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestProxyConfigs(t *testing.T) {
	backends := []string{"127.0.0.1:9001", "127.0.0.1:9002"}
	tests := []struct {
		name, conf string
		want       []string
	}{
		{"nginx least_conn precedes keepalive", nginxConf("/w", "127.0.0.1:8080", "least", backends),
			[]string{"worker_processes 1;", "least_conn;\n        server 127.0.0.1:9001;", "keepalive 256;", "proxy_http_version 1.1;", `proxy_set_header Connection "";`, "listen 127.0.0.1:8080;"}},
		{"nginx ip_hash", nginxConf("/w", "127.0.0.1:8080", "hash", backends), []string{"ip_hash;"}},
		{"haproxy source", haproxyConf("127.0.0.1:8080", "hash", backends),
			[]string{"nbthread 1", "http-reuse always", "balance source", "server b2 127.0.0.1:9002"}},
		{"haproxy leastconn", haproxyConf("127.0.0.1:8080", "least", backends), []string{"balance leastconn"}},
		{"shoal route", routeYAML("hash"), []string{"hosts: [backend]", "strategy: STRATEGY_IP_HASH", "- service: backend"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, w := range tc.want {
				if !strings.Contains(tc.conf, w) {
					t.Errorf("config lacks %q:\n%s", w, tc.conf)
				}
			}
		})
	}
	if strings.Contains(nginxConf("/w", "a", "rr", backends), "least_conn") {
		t.Error("nginx round robin config names a balancing directive")
	}
}

func TestParseConfigQuick(t *testing.T) {
	c, err := parseConfig([]string{"-quick", "-runs", "3", "-proxies", "haproxy,nginx"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Runs != 3 || c.Duration.Seconds() != 2 || c.Warmup.Seconds() != 1 {
		t.Errorf("quick with -runs 3: runs %d duration %v warmup %v, want 3, 2s, 1s", c.Runs, c.Duration, c.Warmup)
	}
	if diff := cmp.Diff([]string{"nginx", "haproxy"}, c.Proxies); diff != "" {
		t.Errorf("proxies (-want +got):\n%s", diff)
	}
	if _, err := parseConfig([]string{"-proxies", "envoy"}); err == nil {
		t.Error("unknown proxy accepted")
	}
}

// Ratios pair the runs of one round, so a round where the whole machine
// was slow does not favour whichever proxy had more runs in good rounds.
func TestPairedRatio(t *testing.T) {
	run := func(proxy string, round int, cpu float64) runResult {
		return runResult{Target: target{Proxy: proxy, Strategy: "rr"}, Round: round, CPUusPerReq: cpu}
	}
	rep := &report{Runs: []runResult{
		run("shoal", 1, 20), run("nginx", 1, 25), // 0.8
		run("shoal", 2, 40), run("nginx", 2, 50), // 0.8: a slow round for both
		run("shoal", 3, 21), run("nginx", 3, 20), // 1.05
		run("nginx", 4, 10), // no shoal run to pair with
		{Target: target{Proxy: "shoal", Strategy: "rr"}, Round: 4, Err: "failed"},
	}}
	shoal, nginx := target{Proxy: "shoal", Strategy: "rr"}, target{Proxy: "nginx", Strategy: "rr"}
	if got := rep.pairedRatio(shoal, nginx, cpuOf); got != "0.80" {
		t.Errorf("paired CPU ratio = %s, want 0.80", got)
	}
	if got := rep.pairedRatio(shoal, target{Proxy: "haproxy", Strategy: "rr"}, cpuOf); got != "n/a" {
		t.Errorf("ratio without haproxy runs = %s, want n/a", got)
	}
}

func TestParseH2Load(t *testing.T) {
	out := `finished in 1.01s, 32582.00 req/s, 1.42MB/s
requests: 32600 total, 32598 started, 32590 done, 32582 succeeded, 8 failed, 2 errored, 1 timeout
status codes: 32582 2xx, 0 3xx, 0 4xx, 8 5xx
`
	got, err := parseH2Load(out)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{Requests: 32582, RPS: 32582, SocketErrs: 3, Non2xx: 8}
	if got != want {
		t.Errorf("parseH2Load = %+v, want %+v", got, want)
	}
	if _, err := parseH2Load("no summary"); err == nil {
		t.Error("parseH2Load accepted output without a summary")
	}
}

func TestNginxAccessLogMatchesTheSidecarsFormat(t *testing.T) {
	conf := withNginxAccessLog(nginxConf("/w", "127.0.0.1:8080", "rr", []string{"127.0.0.1:1"}), "/w/access.log")
	if strings.Contains(conf, "access_log off") || !strings.Contains(conf, "access_log /w/access.log envoy buffer=64k flush=100ms;") ||
		!strings.Contains(conf, `log_format envoy '[$time_iso8601] "$request" $status`) {
		t.Errorf("nginx conf with access log:\n%s", conf)
	}
}

// -access-log-ab measures nginx and shoal without and with their access
// logs in every round and reports each log's cost from paired runs.
func TestAccessLogAB(t *testing.T) {
	c, err := parseConfig([]string{"-access-log-ab", "-proxies", "nginx,shoal", "-strategies", "rr"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tg := range listTargets(c, nil) {
		names = append(names, tg.String())
	}
	if diff := cmp.Diff([]string{"direct", "nginx/rr", "nginx/rr+log", "shoal/rr", "shoal/rr+log"}, names); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
	if _, err := parseConfig([]string{"-access-log-ab", "-access-log"}); err == nil {
		t.Error("-access-log-ab with -access-log accepted")
	}
	run := func(proxy string, log bool, cpu float64) runResult {
		return runResult{Target: target{Proxy: proxy, Strategy: "rr", Log: log}, Round: 1, CPUusPerReq: cpu}
	}
	rep := &report{Meta: meta{Strategies: []string{"rr"}, AccessLogAB: true}, Runs: []runResult{
		run("shoal", false, 10), run("shoal", true, 10.3), run("nginx", false, 10), run("nginx", true, 10.6),
	}}
	var b strings.Builder
	rep.ratios(&b)
	for _, want := range []string{"| round robin | 1.00 |", "| round robin, access logs on | 0.97 |", "| round robin | 1.03 | 1.06 |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

// -baseline-sidecar runs a second sidecar binary beside every shoal
// target and reports shoal against it from paired runs.
func TestBaselineSidecar(t *testing.T) {
	c, err := parseConfig([]string{"-access-log-ab", "-proxies", "shoal", "-strategies", "rr", "-baseline-sidecar", "/main/shoal"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tg := range listTargets(c, nil) {
		names = append(names, tg.String())
	}
	if diff := cmp.Diff([]string{"direct", "shoal/rr", "shoal/rr+log", "shoal-base/rr", "shoal-base/rr+log"}, names); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
	run := func(proxy string, cpu float64) runResult {
		return runResult{Target: target{Proxy: proxy, Strategy: "rr"}, Round: 1, CPUusPerReq: cpu}
	}
	rep := &report{Meta: meta{Strategies: []string{"rr"}, Baseline: "/main/shoal"}, Runs: []runResult{run("shoal", 9.9), run("shoal-base", 10)}}
	var b strings.Builder
	rep.ratios(&b)
	if !strings.Contains(b.String(), "| round robin | 0.99 |") || !strings.Contains(b.String(), "shoal-base is /main/shoal") {
		t.Errorf("report lacks shoal/shoal-base 0.99:\n%s", b.String())
	}
}
