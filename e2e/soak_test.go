//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// Issue 8: no false deaths under CPU starvation and pauses. Outside the
// default suite: SHOAL_SOAK=1 (as root) runs it for SHOAL_SOAK_DURATION
// (default 5m) on a 10-member mesh (control plane, 8 instance sidecars, a
// client sidecar) under traffic, with the client sidecar (the one proxying
// every request) in its own cgroup limited to 10 % of one CPU and an
// instance's sidecar SIGSTOPped for 2 s every 10 s. It
// counts dead declarations on every member (shoal_gossip_dead_events_total
// on each admin /metrics) and samples the control plane's member list
// every second; the target is 0.
//
//	go build -o /tmp/shoal ./cmd/shoal && SHOAL_BIN=/tmp/shoal SHOAL_SOAK=1 \
//	  SHOAL_SOAK_DURATION=5m go test ./e2e/ -run Soak -v -timeout 30m
func TestGossipSoakStarvationAndPauses(t *testing.T) {
	if os.Getenv("SHOAL_SOAK") != "1" {
		t.Skip("soak run: set SHOAL_SOAK=1 (and SHOAL_SOAK_DURATION, default 5m); `make test` runs a 30 s one (make soak-smoke)")
	}
	dur := 5 * time.Minute
	if v := os.Getenv("SHOAL_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("SHOAL_SOAK_DURATION=%q: want a positive duration", v)
		}
		dur = d
	}
	m := harness.StartMesh(t, 8, harness.MeshOptions{})
	admins := meshAdmins(m)
	waitAllAlive(t, m.CP, len(admins))
	// The client sidecar carries all the traffic: starving it bites.
	starved, paused := m.Client, m.Sidecars[1]
	cg := limitCPU(t, starved.PID(), 10)
	counters := []string{"shoal_gossip_dead_events_total", "shoal_gossip_suspect_events_total", "shoal_gossip_refuted_events_total"}
	before := map[string]int{}
	for _, c := range counters {
		before[c] = sumGossipCounter(t, admins, c)
	}

	stopPauses := make(chan struct{})
	pausesDone := make(chan int, 1)
	go pauseEvery(paused, 10*time.Second, 2*time.Second, stopPauses, pausesDone)
	start := time.Now()
	var loads []*harness.LoadResult
	deadSeen := map[string]int{}
	samples := 0
	for time.Since(start) < dur {
		chunk := min(dur-time.Since(start), harness.MaxLoadDuration)
		load := harness.StartLoad(t, harness.LoadOptions{URL: m.URL(), Duration: chunk, Concurrency: 4, Pace: 5 * time.Millisecond})
		for chunkEnd := time.Now().Add(chunk); time.Now().Before(chunkEnd); {
			if st, err := m.CP.Status(t); err == nil {
				samples++
				for _, mem := range st.Members {
					if mem.State == "dead" {
						deadSeen[mem.Name]++
					}
				}
			}
			<-time.After(time.Second) // sampling period
		}
		loads = append(loads, load.Stop())
	}
	close(stopPauses)
	pauses := <-pausesDone
	elapsed := time.Since(start)

	got := map[string]int{}
	for _, c := range counters {
		got[c] = sumGossipCounter(t, admins, c) - before[c]
	}
	var sent, ok, failed int
	for _, r := range loads {
		sent, ok, failed = sent+r.Sent, ok+r.OK, failed+r.Failures()
	}
	t.Logf("soak %s, %d members: %s (%s) limited to 10%% CPU [%s], %s (%s) SIGSTOPped 2s x %d; "+
		"dead events %d, suspect events %d, refuted %d (summed over every member's view); control plane samples with a dead member: %d of %d %v; "+
		"requests %d: %d ok, %d failed",
		elapsed.Round(time.Second), len(admins), starved.InstanceID, starved.Admin, cg.stats(), m.ID(1), paused.Admin, pauses,
		got[counters[0]], got[counters[1]], got[counters[2]], len(deadSeen), samples, deadSeen, sent, ok, failed)
	if got[counters[0]] != 0 || len(deadSeen) != 0 {
		t.Errorf("false deaths: %d dead events, control plane saw dead members %v; want none", got[counters[0]], deadSeen)
	}
	waitAllAlive(t, m.CP, len(admins))
}

// pauseEvery SIGSTOPs p for pause every period until stop closes, always
// leaving it running, and sends the number of pauses on done.
func pauseEvery(p *harness.Sidecar, period, pause time.Duration, stop <-chan struct{}, done chan<- int) {
	n := 0
	defer func() { done <- n }()
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		p.Pause()
		n++
		select {
		case <-time.After(pause):
		case <-stop:
		}
		p.Resume()
	}
}

// cpuCgroup is a cgroup this test created to throttle one process.
type cpuCgroup struct {
	dir string
	v2  bool
}

// limitCPU moves pid into a new cgroup limited to percent of one CPU
// (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us where the cpu controller is
// still on v1) and removes it at cleanup, moving the process back first.
// It skips the test when neither is available or writable.
func limitCPU(t *testing.T, pid, percent int) *cpuCgroup {
	t.Helper()
	const period = 100000 // µs
	quota := period * percent / 100
	name := fmt.Sprintf("shoal-soak-%d", os.Getpid())
	var cg cpuCgroup
	var limits [][2]string
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && strings.Contains(" "+string(b)+" ", " cpu ") {
		cg = cpuCgroup{dir: filepath.Join("/sys/fs/cgroup", name), v2: true}
		limits = [][2]string{{"cpu.max", fmt.Sprintf("%d %d", quota, period)}}
	} else if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"); err == nil {
		cg = cpuCgroup{dir: filepath.Join("/sys/fs/cgroup/cpu", name)}
		limits = [][2]string{{"cpu.cfs_period_us", strconv.Itoa(period)}, {"cpu.cfs_quota_us", strconv.Itoa(quota)}}
	} else {
		harness.Unavailable(t, "no cgroup cpu controller (v2 cpu.max or v1 cpu.cfs_quota_us) at /sys/fs/cgroup")
	}
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		harness.Unavailable(t, fmt.Sprintf("cannot create a cgroup (needs root): %v", err))
	}
	t.Cleanup(func() {
		parent := filepath.Join(filepath.Dir(cg.dir), "cgroup.procs")
		if b, err := os.ReadFile(filepath.Join(cg.dir, "cgroup.procs")); err == nil {
			for _, p := range strings.Fields(string(b)) {
				os.WriteFile(parent, []byte(p), 0o644)
			}
		}
		if err := syscall.Rmdir(cg.dir); err != nil {
			t.Errorf("remove cgroup %s: %v", cg.dir, err)
		}
	})
	for _, l := range limits {
		if err := os.WriteFile(filepath.Join(cg.dir, l[0]), []byte(l[1]), 0o644); err != nil {
			t.Fatalf("cgroup %s: %v", l[0], err)
		}
	}
	if err := os.WriteFile(filepath.Join(cg.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Fatalf("move pid %d into %s: %v", pid, cg.dir, err)
	}
	return &cg
}

// stats summarises cpu.stat: how often and how long the group was
// throttled, which shows the limit bit.
func (cg *cpuCgroup) stats() string {
	b, err := os.ReadFile(filepath.Join(cg.dir, "cpu.stat"))
	if err != nil {
		return "cpu.stat: " + err.Error()
	}
	kv := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			kv[f[0]], _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	throttled := time.Duration(kv["throttled_time"]) // v1: ns
	if cg.v2 {
		throttled = time.Duration(kv["throttled_usec"]) * time.Microsecond
	}
	return fmt.Sprintf("throttled in %d of %d periods, %s in all", kv["nr_throttled"], kv["nr_periods"], throttled.Round(time.Millisecond))
}
