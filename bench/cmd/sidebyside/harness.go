package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-mesh/shoal/bench/internal/proc"
)

// harness owns the processes and state of one benchmark run.
type harness struct {
	cfg      Config
	ps       *proc.Group
	work     string
	tck      int64 // clock ticks per second for /proc CPU times
	backends []backendProc
	app      backendProc // the sidecar's local app (--app-port)
	shoal    *shoalEnv   // nil when shoal is not measured
	measured int         // measurements started, for per-run directories
	pki      *benchPKI   // the mTLS mode's CA and certificates for nginx and HAProxy
}

type backendProc struct {
	id, addr string
	p        *proc.Proc
}

// target is one measured configuration.
type target struct {
	Proxy    string `json:"proxy"`    // direct, nginx, haproxy, shoal
	Strategy string `json:"strategy"` // rr, least, hash; empty for direct
	// Log is true when the proxy writes an access log (-access-log, or
	// half the targets with -access-log-ab).
	Log bool `json:"access_log,omitempty"`
	// Unavailable is why the target cannot be measured here, if it cannot.
	Unavailable string `json:"unavailable,omitempty"`
}

func (t target) String() string {
	s := t.Proxy
	if t.Strategy != "" {
		s += "/" + t.Strategy
	}
	if t.Log {
		s += "+log"
	}
	return s
}

// same reports whether a and b are the same configuration.
func (t target) same(o target) bool {
	return t.Proxy == o.Proxy && t.Strategy == o.Strategy && t.Log == o.Log
}

// Run measures every target cfg selects and prints the report.
func Run(ctx context.Context, cfg Config) error {
	h, err := newHarness(cfg)
	if err != nil {
		return err
	}
	defer h.close()
	meta := collectMeta(cfg)
	if err := h.startBackends(); err != nil {
		return err
	}
	targets := h.targets(ctx)
	runs, err := h.rounds(ctx, targets)
	if err != nil {
		return err
	}
	rep := newReport(meta, targets, runs)
	md := rep.markdown()
	fmt.Print(md)
	return rep.save(cfg.ResultsDir, md)
}

func newHarness(cfg Config) (*harness, error) {
	work := cfg.WorkDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "shoal-bench-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	runID := strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	fmt.Fprintf(os.Stderr, "sidebyside: run %s, logs in %s\n", runID, work)
	return &harness{cfg: cfg, ps: proc.NewGroup(runID, work), work: work, tck: proc.ClockTicks()}, nil
}

func (h *harness) close() {
	h.ps.StopAll()
	if !h.cfg.KeepWork && h.cfg.WorkDir == "" {
		os.RemoveAll(h.work)
	}
}

func (h *harness) proxyCPUs() string {
	if h.cfg.NoPin {
		return ""
	}
	return h.cfg.ProxyCPUs
}

func (h *harness) loadCPUs() string {
	if h.cfg.NoPin {
		return ""
	}
	return h.cfg.LoadCPUs
}

// startBackends starts b1..b3 and the sidecar's app, each with
// GOMAXPROCS=1 on the load CPUs, and reads the address each prints.
func (h *harness) startBackends() error {
	for i := range 4 {
		id := fmt.Sprintf("b%d", i+1)
		if i == 3 {
			id = "app"
		}
		pr, pw := io.Pipe()
		args := []string{h.cfg.BackendBin, "-listen", "127.0.0.1:0", "-id", id}
		if h.cfg.H2 && i < 3 {
			args = append(args, "-grpc")
		}
		p, err := h.ps.Start(proc.Spec{
			Name:   "backend-" + id,
			Args:   args,
			CPUs:   h.loadCPUs(),
			Env:    []string{"GOMAXPROCS=1"},
			Stdout: pw,
		})
		if err != nil {
			return err
		}
		addr, err := readListening(pr, 10*time.Second)
		go io.Copy(io.Discard, pr) // keep draining; the pipe closes when the process exits
		if err != nil {
			return fmt.Errorf("backend %s: %w: %s", id, err, p.Tail())
		}
		b := backendProc{id: id, addr: addr, p: p}
		if i == 3 {
			h.app = b
		} else {
			h.backends = append(h.backends, b)
		}
	}
	return nil
}

func readListening(r io.Reader, timeout time.Duration) (string, error) {
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		got <- strings.TrimSpace(line)
	}()
	select {
	case line := <-got:
		addr, ok := strings.CutPrefix(line, "listening ")
		if !ok {
			return "", fmt.Errorf("unexpected first line %q", line)
		}
		return addr, nil
	case <-time.After(timeout):
		return "", errors.New("no address printed")
	}
}

func (h *harness) backendAddrs() []string {
	out := make([]string, len(h.backends))
	for i, b := range h.backends {
		out[i] = b.addr
	}
	return out
}

// targets lists direct and every selected proxy × strategy, marking the
// ones that cannot run here.
func (h *harness) targets(ctx context.Context) []target {
	reasons := map[string]string{}
	for _, p := range h.cfg.Proxies {
		reasons[p] = h.availability(ctx, p)
	}
	if h.cfg.BaselineSidecar != "" {
		reasons["shoal-base"] = reasons["shoal"]
		if _, err := os.Stat(h.cfg.BaselineSidecar); err != nil {
			reasons["shoal-base"] = "baseline sidecar: " + err.Error()
		}
	}
	return listTargets(h.cfg, reasons)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// listTargets is direct and every proxy × strategy of cfg (each twice,
// without and with access logs, under -access-log-ab), marked with the
// proxy's reason not to run.
func listTargets(cfg Config, reasons map[string]string) []target {
	ts := []target{{Proxy: "direct"}}
	for _, s := range cfg.Strategies {
		for _, p := range cfg.Proxies {
			t := target{Proxy: p, Strategy: s, Log: cfg.AccessLog, Unavailable: reasons[p]}
			ts = append(ts, t)
			if cfg.AccessLogAB && p != "haproxy" { // HAProxy logs to syslog only
				t.Log = true
				ts = append(ts, t)
			}
			if p == "shoal" && cfg.BaselineSidecar != "" {
				for _, t := range slices.Clone(ts[len(ts)-1-btoi(cfg.AccessLogAB):]) {
					t.Proxy, t.Unavailable = "shoal-base", reasons["shoal-base"]
					ts = append(ts, t)
				}
			}
		}
	}
	return ts
}

func (h *harness) availability(ctx context.Context, proxy string) string {
	var err error
	switch proxy {
	case "nginx":
		_, err = lookPath(h.cfg.NginxBin)
		if err == nil && h.cfg.H2 {
			_, err = lookPath(h.cfg.H2LoadBin)
		}
	case "haproxy":
		_, err = lookPath(h.cfg.HAProxyBin)
	case "shoal":
		h.shoal, err = h.setupShoal(ctx)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sidebyside: %s not available: %v\n", proxy, err)
		return err.Error()
	}
	return ""
}

// rounds measures every available target once per round, rotating the
// order each round so that no target always runs first or after the same
// neighbour (A/B interleaving).
func (h *harness) rounds(ctx context.Context, targets []target) ([]runResult, error) {
	var avail []target
	for _, t := range targets {
		if t.Unavailable == "" {
			avail = append(avail, t)
		}
	}
	var runs []runResult
	for r := range h.cfg.Runs {
		for i := range avail {
			t := avail[(i+r)%len(avail)]
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("interrupted: %w", err)
			}
			res := h.measure(ctx, t, r)
			fmt.Fprintf(os.Stderr, "[round %d/%d] %-14s %s\n", r+1, h.cfg.Runs, t, res.brief())
			runs = append(runs, res)
		}
	}
	return runs, nil
}

// runResult is one measurement of one target.
type runResult struct {
	Target      target    `json:"target"`
	Round       int       `json:"round"`
	Wrk         wrkResult `json:"wrk"`
	CPUTicks    int64     `json:"proxy_cpu_ticks"`
	CPUusPerReq float64   `json:"proxy_cpu_us_per_request"`
	RSSKB       int64     `json:"proxy_rss_kb"`
	Procs       int       `json:"proxy_processes"`
	// BackendShares are the requests each backend answered during the
	// measured run, read from the backends themselves.
	BackendShares []int64 `json:"backend_requests"`
	// UpstreamConns are the connections the backends accepted during the
	// measured run: about Conns for direct, small for a proxy that reuses
	// upstream connections, about the request count for one that does not.
	UpstreamConns int64  `json:"upstream_conns_opened"`
	Note          string `json:"note,omitempty"`
	Err           string `json:"error,omitempty"`
}

func (r runResult) brief() string {
	if r.Err != "" {
		return "error: " + r.Err
	}
	s := fmt.Sprintf("%8.0f rps  p50 %s  p99 %s", r.Wrk.RPS, fmtUS(r.Wrk.P50us), fmtUS(r.Wrk.P99us))
	if r.Procs > 0 {
		s += fmt.Sprintf("  cpu %.1fµs/req  rss %.1fMiB", r.CPUusPerReq, float64(r.RSSKB)/1024)
	}
	s += fmt.Sprintf("  spread %s  upstream conns %d", spread(r.BackendShares), r.UpstreamConns)
	if r.Note != "" {
		s += "  (" + r.Note + ")"
	}
	return s
}

func (h *harness) start(ctx context.Context, t target) (*instance, error) {
	h.measured++
	dir := filepath.Join(h.work, fmt.Sprintf("run%03d-%s-%s", h.measured, t.Proxy, t.Strategy))
	if t.Log {
		dir += "-log"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	switch t.Proxy {
	case "direct":
		return &instance{addr: h.backends[0].addr}, nil
	case "nginx", "haproxy":
		if h.cfg.MTLS {
			return h.startPair(ctx, t.Proxy, dir)
		}
	}
	switch t.Proxy {
	case "nginx":
		return h.startNginx(ctx, t.Strategy, t.Log, dir)
	case "haproxy":
		return h.startHAProxy(ctx, t.Strategy, dir)
	case "shoal":
		if h.cfg.MTLS {
			return h.startShoalPair(ctx, dir)
		}
		return h.startShoal(ctx, h.cfg.sidecarBin(), t.Strategy, t.Log, dir)
	case "shoal-base":
		return h.startShoal(ctx, h.cfg.BaselineSidecar, t.Strategy, t.Log, dir)
	}
	return nil, fmt.Errorf("unknown proxy %q", t.Proxy)
}

// measure starts t, warms it up, and measures one wrk run, reading the
// proxy's CPU time before and after and its RSS at the end.
func (h *harness) measure(ctx context.Context, t target, round int) runResult {
	res := runResult{Target: t, Round: round}
	inst, err := h.start(ctx, t)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	if inst.root != nil {
		defer h.ps.Stop(inst.root, 3*time.Second)
	}
	for _, p := range inst.also {
		defer h.ps.Stop(p, 3*time.Second)
	}
	res.Note = inst.note
	if err := h.measureInstance(ctx, inst, &res); err != nil {
		res.Err = err.Error()
	}
	return res
}

func (h *harness) measureInstance(ctx context.Context, inst *instance, res *runResult) error {
	load := h.wrk
	if h.cfg.H2 {
		load = func(ctx context.Context, addr string, d time.Duration) (wrkResult, error) {
			return h.h2load(ctx, addr, d, h.work)
		}
	}
	if h.cfg.Warmup > 0 {
		if _, err := load(ctx, inst.addr, h.cfg.Warmup); err != nil {
			return fmt.Errorf("warmup: %w", err)
		}
	}
	var before []backendCount
	if !h.cfg.H2 {
		var err error
		if before, err = h.backendCounts(); err != nil {
			return err
		}
	}
	var err error
	var u0 proc.Usage
	if inst.root != nil {
		if u0, err = inst.usage(); err != nil {
			return err
		}
	}
	w, err := load(ctx, inst.addr, h.cfg.Duration)
	if err != nil {
		return err
	}
	res.Wrk = w
	if inst.root != nil {
		u1, err := inst.usage()
		if err != nil {
			return fmt.Errorf("proxy died during the run: %w\n%s", err, inst.root.Tail())
		}
		res.CPUTicks = u1.Ticks - u0.Ticks
		res.RSSKB, res.Procs = u1.RSSKB, u1.Procs
		if w.Requests > 0 {
			res.CPUusPerReq = float64(res.CPUTicks) * 1e6 / float64(h.tck) / float64(w.Requests)
		}
	}
	if h.cfg.H2 {
		// grpc-go backends keep no counters: failed calls are the check.
		if errs := w.SocketErrs + w.Non2xx; errs > 0 || w.Requests == 0 {
			return fmt.Errorf("%d errored or timed out and %d failed calls, %d succeeded", w.SocketErrs, w.Non2xx, w.Requests)
		}
		return nil
	}
	after, err := h.backendCounts()
	if err != nil {
		return err
	}
	var total int64
	for i := range after {
		n := after[i].requests - before[i].requests
		res.BackendShares = append(res.BackendShares, n)
		total += n
		res.UpstreamConns += after[i].conns - before[i].conns - 1 // the "after" read's own
	}
	if w.Requests == 0 {
		return errors.New("wrk completed no request")
	}
	if n := spreadNote(res.Target.Strategy, res.BackendShares); n != "" && !h.cfg.MTLS {
		res.Note = strings.TrimPrefix(res.Note+"; "+n, "; ")
	}
	if errs := w.SocketErrs + w.Non2xx; errs > w.Requests/1000 {
		return fmt.Errorf("%d socket errors and %d non-2xx responses in %d requests", w.SocketErrs, w.Non2xx, w.Requests)
	}
	// A proxy must not answer without its backends: the backends' count
	// may exceed wrk's by the requests in flight when wrk stopped.
	if float64(total) < 0.99*float64(w.Requests) {
		return fmt.Errorf("backends answered %d requests, wrk counted %d", total, w.Requests)
	}
	return nil
}

// wrk runs one bounded wrk load against addr on the load CPUs.
func (h *harness) wrk(ctx context.Context, addr string, d time.Duration) (wrkResult, error) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	out, err := h.ps.Run(ctx, proc.Spec{
		Name: "wrk",
		Args: []string{h.cfg.WrkBin, "-t", strconv.Itoa(h.cfg.Threads), "-c", strconv.Itoa(h.cfg.Conns),
			"-d", strconv.Itoa(secs) + "s", "--timeout", "5s", "--latency", "http://" + addr + "/"},
		CPUs: h.loadCPUs(),
	}, d+30*time.Second)
	if err != nil {
		return wrkResult{}, err
	}
	return parseWrk(out)
}

// spreadNote flags a backend spread that contradicts the strategy: wrk
// has one source IP, so IP hash must send (nearly) everything to one
// backend, and round robin must spread evenly.
func spreadNote(strategy string, counts []int64) string {
	f := fractions(counts)
	if len(f) == 0 {
		return ""
	}
	lo, hi := slices.Min(f), slices.Max(f)
	switch {
	case strategy == "hash" && hi < 0.9:
		return fmt.Sprintf("spread %s: not hashing on the one source IP", spread(counts))
	case strategy == "rr" && hi-lo > 0.1:
		return fmt.Sprintf("spread %s: uneven for round robin", spread(counts))
	}
	return ""
}

// backendCount is what a backend reports on /__count.
type backendCount struct{ requests, conns int64 }

// backendCounts reads each backend's counters directly. Each read opens
// one connection, counted in the counters it reads.
func (h *harness) backendCounts() ([]backendCount, error) {
	out := make([]backendCount, len(h.backends))
	for i, b := range h.backends {
		body, err := getBody("http://"+b.addr+"/__count", 5*time.Second)
		if err != nil {
			return nil, fmt.Errorf("backend %s count: %w", b.id, err)
		}
		if _, err := fmt.Sscan(body, &out[i].requests, &out[i].conns); err != nil {
			return nil, fmt.Errorf("backend %s count %q: %w", b.id, body, err)
		}
	}
	return out, nil
}

var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func getBody(url string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

// waitBackendAnswer polls url until a backend answers through it (200
// with X-Backend), the timeout passes, or p exits.
func waitBackendAnswer(ctx context.Context, url string, timeout time.Duration, p *proc.Proc) error {
	return poll(ctx, timeout, p, func() error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Backend") == "" {
			return fmt.Errorf("GET %s: %s, X-Backend %q", url, resp.Status, resp.Header.Get("X-Backend"))
		}
		return nil
	})
}

// poll calls check every 50ms until it succeeds, returning its last error
// once timeout passes, ctx is done or p (if not nil) exits.
func poll(ctx context.Context, timeout time.Duration, p *proc.Proc, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited (%v); last check: %w", p.Name, p.Err(), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; last check: %w", ctx.Err(), err)
		case <-tick.C:
		}
	}
}
