package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-mesh/shoal/bench/internal/openloop"
	"github.com/shoal-mesh/shoal/bench/internal/proc"
)

// harness owns the processes and state of one run.
type harness struct {
	cfg      Config
	ps       *proc.Group
	work     string
	fleet    fleet
	localApp string // the sidecar's --app-port target, served in-process
	measured int
}

// measurement is one open-loop run of one target, with its warmup.
type measurement struct {
	Target     target           `json:"target"`
	Round      int              `json:"round"`
	Rate       float64          `json:"rate"`
	Sent       int64            `json:"sent"`
	OK         int64            `json:"ok"`
	Errors     map[string]int64 `json:"errors,omitempty"`
	ErrorCount int64            `json:"error_count"`
	// Latencies from the intended send time, ms.
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
	// Shares of the OK answers per instance id.
	Shares map[string]float64 `json:"shares"`
	// Buckets are the answers per instance per Bucket, the warmup's first.
	Buckets       []map[string]int64 `json:"buckets"`
	WarmupBuckets int                `json:"warmup_buckets"`
	// LateMS is the generator's own worst lag behind its schedule.
	LateMS float64 `json:"generator_late_ms"`
	// ThrottledMS is how long the cgroup froze instance c during the
	// measured run.
	ThrottledMS float64 `json:"throttled_ms"`
	// Reports are the instances' load reports as the sidecar saw them
	// during the measured run (medians of one read a second).
	Reports map[string]loadReport `json:"load_reports,omitempty"`
	// ProxyCPUus is the proxy's CPU time per request in the measured run
	// (its whole process tree, from /proc), µs.
	ProxyCPUus float64 `json:"proxy_cpu_us_per_request"`
	Note       string  `json:"note,omitempty"`
	Err        string  `json:"error,omitempty"`
}

// Run measures every target cfg selects and writes the report.
func Run(ctx context.Context, cfg Config) error {
	h, err := newHarness(cfg)
	if err != nil {
		return err
	}
	defer h.close()
	m := collectMeta(cfg)
	if err := h.serveLocalApp(); err != nil {
		return err
	}
	if err := h.startControlPlane(ctx); err != nil {
		return err
	}
	if err := h.startFleet(ctx); err != nil {
		return err
	}
	m.CPULimit = h.fleet.CPUNote
	m.Instances = h.fleet.instances
	rate := cfg.Rate
	if rate == 0 {
		capacity, err := h.capacity(ctx)
		if err != nil {
			return err
		}
		m.Capacity = capacity
		rate = capacity * cfg.Load
	}
	m.Rate = rate
	fmt.Fprintf(os.Stderr, "lbbench: open-loop rate %.0f rps\n", rate)
	runs, err := h.rounds(ctx, rate)
	if err != nil {
		return err
	}
	rep := newReport(m, cfg.Targets, runs)
	md := rep.markdown()
	if err := rep.save(cfg, md); err != nil {
		return err
	}
	fmt.Print(rep.markdown())
	return nil
}

func newHarness(cfg Config) (*harness, error) {
	work := cfg.WorkDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "shoal-lbbench-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	runID := strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	fmt.Fprintf(os.Stderr, "lbbench: run %s, logs in %s\n", runID, work)
	return &harness{cfg: cfg, ps: proc.NewGroup(runID, work), work: work}, nil
}

// close ends every process, then removes the cgroup (it must be empty).
func (h *harness) close() {
	h.ps.StopAll()
	if h.fleet.limit != nil {
		if err := h.fleet.limit.Remove(); err != nil {
			fmt.Fprintln(os.Stderr, "lbbench:", err)
		}
	}
	if !h.cfg.KeepWork && h.cfg.WorkDir == "" {
		os.RemoveAll(h.work)
	}
}

// serveLocalApp answers the sidecar's inbound side (its --app-port),
// which the bench does not load.
func (h *harness) serveLocalApp() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	h.localApp = l.Addr().String()
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})) // ends with the process
	return nil
}

// capacity measures the fleet's capacity: a closed loop of CapacityConns
// connections through nginx least_conn, after a 2 s warmup.
func (h *harness) capacity(ctx context.Context) (float64, error) {
	dir := filepath.Join(h.work, "capacity")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	r, err := h.start(ctx, allTargets[0], dir)
	if err != nil {
		return 0, fmt.Errorf("capacity run: %w", err)
	}
	defer h.ps.Stop(r.p, 3*time.Second)
	url := "http://" + r.addr + "/"
	if _, _, err := openloop.Closed(ctx, url, h.cfg.CapacityConns, 2*time.Second); err != nil {
		return 0, err
	}
	rps, failures, err := openloop.Closed(ctx, url, h.cfg.CapacityConns, h.cfg.CapacityDuration)
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(os.Stderr, "lbbench: capacity %.0f rps (closed loop, %d connections through nginx least_conn, %d failed)\n",
		rps, h.cfg.CapacityConns, failures)
	if rps <= 0 {
		return 0, fmt.Errorf("capacity run completed no request (%d failed)", failures)
	}
	return rps, nil
}

// rounds measures every target once per round, rotating the order each
// round so that no target always runs first or after the same neighbour.
func (h *harness) rounds(ctx context.Context, rate float64) ([]measurement, error) {
	ts := h.cfg.Targets
	var out []measurement
	for r := range h.cfg.Runs {
		for i := range ts {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("interrupted: %w", err)
			}
			t := ts[(i+r)%len(ts)]
			m := h.measure(ctx, t, r, rate)
			fmt.Fprintf(os.Stderr, "[round %d/%d] %-26s %s\n", r+1, h.cfg.Runs, t, m.brief())
			out = append(out, m)
		}
	}
	return out, nil
}

func (m measurement) brief() string {
	if m.Err != "" {
		return "error: " + m.Err
	}
	return fmt.Sprintf("p50 %6.1fms  p99 %7.1fms  p99.9 %7.1fms  errors %d  shares %s  throttled %.0fms  gen-late %.1fms  proxy %.0fµs/req",
		m.P50, m.P99, m.P999, m.ErrorCount, sharesString(m.Shares), m.ThrottledMS, m.LateMS, m.ProxyCPUus)
}

// measure starts t fresh, runs the warmup and the measured run at rate.
func (h *harness) measure(ctx context.Context, t target, round int, rate float64) measurement {
	m := measurement{Target: t, Round: round, Rate: rate}
	h.measured++
	dir := filepath.Join(h.work, fmt.Sprintf("run%03d-%s", h.measured, t.Name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		m.Err = err.Error()
		return m
	}
	if t.Floor {
		// b stops stalling for this target's warmup and run.
		if err := h.fleet.toggleStall(); err != nil {
			m.Err = err.Error()
			return m
		}
		defer h.fleet.toggleStall()
	}
	r, err := h.start(ctx, t, dir)
	if err != nil {
		m.Err = err.Error()
		return m
	}
	defer h.ps.Stop(r.p, 3*time.Second)
	m.Note = r.note
	cfg := openloop.Config{URL: "http://" + r.addr + "/", Rate: rate, Bucket: h.cfg.Bucket}
	if h.cfg.Warmup > 0 {
		cfg.Duration = h.cfg.Warmup
		w, err := openloop.Run(ctx, cfg)
		if err != nil {
			m.Err = "warmup: " + err.Error()
			return m
		}
		m.Buckets = padBuckets(w.Buckets, int(h.cfg.Warmup/h.cfg.Bucket))
		m.WarmupBuckets = len(m.Buckets)
	}
	var throttled0 time.Duration
	if h.fleet.limit != nil {
		throttled0 = h.fleet.limit.Throttled()
	}
	cfg.Duration = h.cfg.Duration
	cfg.KeepSamples = h.cfg.KeepWork
	var reports chan map[string]loadReport
	sctx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	if r.admin != "" {
		reports = make(chan map[string]loadReport, 1)
		var trace io.Writer
		if h.cfg.KeepWork {
			f, err := os.Create(filepath.Join(dir, "reports.csv"))
			if err != nil {
				m.Err = err.Error()
				return m
			}
			defer f.Close()
			trace = f
		}
		go func() { reports <- sampleReports(sctx, r.admin, h.fleet.idOf(), trace) }()
	}
	u0, _ := proc.TreeUsage(r.p.Pid())
	res, err := openloop.Run(ctx, cfg)
	u1, _ := proc.TreeUsage(r.p.Pid())
	stopSampling()
	if reports != nil {
		m.Reports = <-reports
	}
	if err != nil {
		m.Err = err.Error()
		return m
	}
	if h.fleet.limit != nil {
		m.ThrottledMS = ms(h.fleet.limit.Throttled() - throttled0)
	}
	if r.p.Exited() {
		m.Err = fmt.Sprintf("%s exited during the run: %v\n%s", r.p.Name, r.p.Err(), r.p.Tail())
		return m
	}
	m.fill(res, h.fleet.ids())
	if cfg.KeepSamples {
		if err := writeSamples(filepath.Join(dir, "requests.csv"), res.Samples); err != nil {
			m.Err = err.Error()
			return m
		}
	}
	if res.Sent > 0 {
		m.ProxyCPUus = float64(u1.Ticks-u0.Ticks) * 1e6 / float64(proc.ClockTicks()) / float64(res.Sent)
	}
	m.Buckets = append(m.Buckets, res.Buckets...)
	return m
}

func (m *measurement) fill(res *openloop.Result, ids []string) {
	m.Sent, m.OK, m.Errors, m.ErrorCount = res.Sent, res.OK, res.Errors, res.ErrorCount()
	m.P50, m.P99, m.P999, m.Max = ms(res.Quantile(0.5)), ms(res.Quantile(0.99)), ms(res.Quantile(0.999)), ms(res.Quantile(1))
	m.LateMS = ms(res.Late)
	m.Shares = map[string]float64{}
	for _, id := range ids {
		if res.OK > 0 {
			m.Shares[id] = float64(res.Backends[id]) / float64(res.OK)
		}
	}
}

// padBuckets makes bs n buckets long (a bucket with no answer is absent
// at the end of a run).
func padBuckets(bs []map[string]int64, n int) []map[string]int64 {
	for len(bs) < n {
		bs = append(bs, map[string]int64{})
	}
	return bs[:max(n, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// writeSamples writes every answered request of a measured run as CSV
// (-keep-work): when it was due in ms from the start, its latency in ms
// and the instance that answered, to see which requests make the tail.
func writeSamples(path string, samples []openloop.Sample) error {
	var b strings.Builder
	b.WriteString("intended_ms,latency_ms,instance\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "%.3f,%.3f,%s\n", ms(s.Intended), ms(s.Latency), s.Backend)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
