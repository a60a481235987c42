package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-mesh/shoal/bench/internal/proc"
)

// report is cpbench's result; every latency is in milliseconds.
type report struct {
	Config          Config    `json:"config"`
	Start           time.Time `json:"start"`
	PopulateSeconds float64   `json:"populate_seconds"`

	Synced      int            `json:"clients_synced"`
	SyncSeconds float64        `json:"sync_seconds"`
	InitBytes   map[string]int `json:"initial_bytes_per_client_median"` // by mode
	TypesSeen   map[string]int `json:"clients_per_type"`                // clients that got each type
	Problems    []string       `json:"problems,omitempty"`

	PutLatencies []float64 `json:"etcd_put_ms"`
	// AllAcked is, per change, write → last synced client's ACK; changes
	// that did not reach every client are counted in Incomplete instead.
	AllAcked   []float64            `json:"all_acked_ms"`
	Incomplete int                  `json:"changes_incomplete"`
	PerClient  map[string][]float64 `json:"per_client_ms"`    // by mode
	Bytes      map[string][]float64 `json:"bytes_per_change"` // by mode, per client

	ChurnSeconds      float64 `json:"churn_seconds"`
	CPCPUSecondsChurn float64 `json:"controlplane_cpu_seconds_churn"`
	CPCPUSecondsTotal float64 `json:"controlplane_cpu_seconds_total"`
	CPRSSMiB          float64 `json:"controlplane_rss_mib"`
	// CPRSSAnonMiB and CPRSSFileMiB split CPRSSMiB into anonymous memory
	// (heap, stacks) and file-backed pages (the binary, etcd's bbolt mmap).
	CPRSSAnonMiB float64 `json:"controlplane_rss_anon_mib"`
	CPRSSFileMiB float64 `json:"controlplane_rss_file_mib"`
	// CPPeakRSSMiB is the control plane's highest RSS so far (VmHWM): the
	// initial sync's, usually.
	CPPeakRSSMiB float64 `json:"controlplane_peak_rss_mib"`
	// CPHeap holds Go runtime gauges of the control plane (heap in use,
	// goroutines, ...) read with CPRSSMiB, by metric name.
	CPHeap map[string]float64 `json:"controlplane_runtime,omitempty"`
}

func modeName(delta bool) string {
	if delta {
		return "delta"
	}
	return "sotw"
}

func (r *report) sync(clients, synced []*client, d time.Duration) {
	r.Synced, r.SyncSeconds = len(synced), d.Seconds()
	r.TypesSeen, r.InitBytes = map[string]int{}, map[string]int{}
	sizes := map[string][]float64{}
	for _, c := range synced {
		sizes[modeName(c.delta)] = append(sizes[modeName(c.delta)], float64(c.initSize))
	}
	for m, s := range sizes {
		r.InitBytes[m] = int(percentile(s, 50))
	}
	errs := map[string]int{}
	for _, c := range clients {
		mask := c.typesMask.Load()
		for i, t := range subscribed {
			if mask&(1<<i) != 0 {
				r.TypesSeen[shortType(t)]++
			}
		}
		if err := c.err(); err != nil {
			errs[modeName(c.delta)+": "+err.Error()]++
		}
	}
	for e, n := range errs {
		r.Problems = append(r.Problems, fmt.Sprintf("%d clients: %s", n, e))
	}
	if len(synced) < len(clients) {
		r.Problems = append(r.Problems, fmt.Sprintf("%d of %d clients did not receive all of CDS, EDS, LDS and RDS (per type: %v)",
			len(clients)-len(synced), len(clients), r.TypesSeen))
	}
	sort.Strings(r.Problems)
}

func shortType(t string) string { return t[strings.LastIndexByte(t, '.')+1:] }

func (r *report) change(seq int, got []seen, want int) {
	if r.PerClient == nil {
		r.PerClient, r.Bytes = map[string][]float64{}, map[string][]float64{}
	}
	var worst time.Duration
	for _, s := range got {
		m := modeName(s.delta)
		r.PerClient[m] = append(r.PerClient[m], s.latency.Seconds()*1e3)
		r.Bytes[m] = append(r.Bytes[m], float64(s.bytes))
		worst = max(worst, s.latency)
	}
	if len(got) < want {
		r.Incomplete++
		fmt.Fprintf(os.Stderr, "cpbench: change %d reached %d of %d clients\n", seq, len(got), want)
		return
	}
	r.AllAcked = append(r.AllAcked, worst.Seconds()*1e3)
}

func (r *report) markdown() string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "## shoal control-plane bench (%s)\n\n", r.Start.Format(time.RFC3339))
	fmt.Fprintf(&b, "%d clients (%s), %d services × %d endpoints, %d endpoint changes every %s.\n\n",
		c.Clients, c.Mode, c.Services, c.Endpoints, c.Changes, c.Interval)
	if len(c.CPArgs)+len(c.CPEnv) > 0 {
		fmt.Fprintf(&b, "Control plane started with %s.\n\n", strings.Join(append(slices.Clone(c.CPEnv), c.CPArgs...), " "))
	}
	fmt.Fprintf(&b, "- initial sync: %d/%d clients got a first CDS, EDS, LDS and RDS response in %.1fs; median bytes of those per client %v (first responses may precede the full registry)\n",
		r.Synced, c.Clients, r.SyncSeconds, r.InitBytes)
	if len(r.AllAcked)+r.Incomplete > 0 {
		fmt.Fprintf(&b, "- etcd write → every client ACKed: p50 %.1f ms, p99 %.1f ms over %d changes (%d did not reach every client within %s)\n",
			percentile(r.AllAcked, 50), percentile(r.AllAcked, 99), len(r.AllAcked), r.Incomplete, c.Wait)
		fmt.Fprintf(&b, "- etcd put latency: p50 %.1f ms, p99 %.1f ms\n", percentile(r.PutLatencies, 50), percentile(r.PutLatencies, 99))
		b.WriteString("\n| mode | per-client p50 | per-client p99 | bytes per change per client (median) | receipts |\n|---|--:|--:|--:|--:|\n")
		for _, m := range []string{"delta", "sotw"} {
			if l := r.PerClient[m]; len(l) > 0 {
				fmt.Fprintf(&b, "| %s | %.1f ms | %.1f ms | %.0f | %d |\n", m, percentile(l, 50), percentile(l, 99), percentile(r.Bytes[m], 50), len(l))
			}
		}
	}
	if r.CPCPUSecondsChurn > 0 || r.CPRSSMiB > 0 {
		fmt.Fprintf(&b, "\n- control plane: %.1f ms CPU per change during the churn (%.1f s over %.1f s), %.1f s CPU in total, RSS %.0f MiB\n",
			1e3*r.CPCPUSecondsChurn/float64(max(1, c.Changes)), r.CPCPUSecondsChurn, r.ChurnSeconds, r.CPCPUSecondsTotal, r.CPRSSMiB)
	}
	if h := r.CPHeap; h != nil {
		mib := func(name string) float64 { return h[name] / (1 << 20) }
		fmt.Fprintf(&b, "- control plane after %s idle: RSS %.0f MiB (anonymous %.0f, file %.0f; peak %.0f); heap in use %.1f MiB (objects %.1f MiB, idle not released %.1f MiB), stacks %.1f MiB, %.0f goroutines\n",
			c.Settle, r.CPRSSMiB, r.CPRSSAnonMiB, r.CPRSSFileMiB, r.CPPeakRSSMiB, mib("go_memstats_heap_inuse_bytes"), mib("go_memstats_heap_alloc_bytes"),
			mib("go_memstats_heap_idle_bytes")-mib("go_memstats_heap_released_bytes"), mib("go_memstats_stack_inuse_bytes"), h["go_goroutines"])
	}
	if len(r.Problems) > 0 {
		b.WriteString("\nNot measured / problems:\n")
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "- %s\n", p)
		}
	}
	return b.String()
}

func (r *report) write(dir string) error {
	md := r.markdown()
	fmt.Print(md)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	stamp := r.Start.Format("20060102-150405")
	if err := os.WriteFile(filepath.Join(dir, "cpbench-"+stamp+".json"), js, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "cpbench-"+stamp+".md"), []byte(md), 0o644)
}

func waitReady(ctx context.Context, url string, p *proc.Proc) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		if p.Exited() {
			return fmt.Errorf("exited (%v): %w", p.Err(), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// scrapeMetrics reads the named untyped-label gauges from a Prometheus text
// endpoint.
func scrapeMetrics(ctx context.Context, url string, names ...string) (map[string]float64, error) {
	body, err := get(ctx, url)
	if err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(names))
	for line := range strings.Lines(string(body)) {
		name, val, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || !slices.Contains(names, name) {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	return out, nil
}

func saveURL(ctx context.Context, url, path string) error {
	body, err := get(ctx, url)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, body, 0o644)
}

func get(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}

// statusKB reads the named kB fields of /proc/<pid>/status.
func statusKB(pid int, names ...string) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(names))
	for line := range strings.Lines(string(b)) {
		name, v, ok := strings.Cut(line, ":")
		if !ok || !slices.Contains(names, name) {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
			out[name] = n
		}
	}
	return out, nil
}
