package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// cpuLimit is a cgroup with a CPU bandwidth quota, created for the run and
// removed after it: cgroup v2's cpu.max where the cpu controller is on the
// unified hierarchy, else cgroup v1's cpu.cfs_quota_us (the same CFS
// bandwidth control under another file name).
type cpuLimit struct {
	dir     string
	version int // 1 or 2
	quota   float64
}

// cfsPeriod is the CFS bandwidth period: the kernel's default, 100 ms.
// With quota 0.5 the instance runs at most 50 ms of every 100 ms, and is
// frozen for the rest once it used them.
const cfsPeriod = 100 * time.Millisecond

func newCPULimit(name string, cpus float64) (*cpuLimit, error) {
	period := cfsPeriod.Microseconds()
	quota := int64(cpus * float64(period))
	if root := "/sys/fs/cgroup"; hasController(filepath.Join(root, "cgroup.controllers"), "cpu") {
		// The root's cgroup.subtree_control must enable cpu for children.
		ctl := filepath.Join(root, "cgroup.subtree_control")
		if !hasController(ctl, "cpu") {
			if err := os.WriteFile(ctl, []byte("+cpu"), 0o644); err != nil {
				return nil, fmt.Errorf("enable the cpu controller in %s: %w", ctl, err)
			}
		}
		l := &cpuLimit{dir: filepath.Join(root, name), version: 2, quota: cpus}
		return l, l.create(map[string]string{"cpu.max": fmt.Sprintf("%d %d", quota, period)})
	}
	if v1 := "/sys/fs/cgroup/cpu"; fileExists(filepath.Join(v1, "cpu.cfs_quota_us")) {
		l := &cpuLimit{dir: filepath.Join(v1, name), version: 1, quota: cpus}
		return l, l.create(map[string]string{"cpu.cfs_period_us": fmt.Sprint(period), "cpu.cfs_quota_us": fmt.Sprint(quota)})
	}
	return nil, errors.New("neither cgroup v2 with the cpu controller nor cgroup v1's cpu hierarchy is mounted under /sys/fs/cgroup")
}

func (l *cpuLimit) create(files map[string]string) error {
	if err := os.Mkdir(l.dir, 0o755); err != nil {
		return fmt.Errorf("create cgroup: %w", err)
	}
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	slices.Sort(keys) // cfs_period_us before cfs_quota_us
	for _, k := range keys {
		if err := os.WriteFile(filepath.Join(l.dir, k), []byte(files[k]), 0o644); err != nil {
			os.Remove(l.dir)
			return fmt.Errorf("cgroup %s: %w", k, err)
		}
	}
	return nil
}

// procsFile is where a process writes its pid to join the cgroup.
func (l *cpuLimit) procsFile() string { return filepath.Join(l.dir, "cgroup.procs") }

func (l *cpuLimit) String() string {
	file := "cpu.max"
	if l.version == 1 {
		file = "cpu.cfs_quota_us"
	}
	return fmt.Sprintf("cgroup v%d %s, %g CPU (%v of every %v)", l.version, file, l.quota,
		time.Duration(l.quota*float64(cfsPeriod)), cfsPeriod)
}

// Throttled reads how long the cgroup's processes were throttled so far
// (cpu.stat), to show the limit bit.
func (l *cpuLimit) Throttled() time.Duration {
	b, err := os.ReadFile(filepath.Join(l.dir, "cpu.stat"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		var n int64
		if _, err := fmt.Sscanf(line, "throttled_usec %d", &n); err == nil { // v2
			return time.Duration(n) * time.Microsecond
		}
		if _, err := fmt.Sscanf(line, "throttled_time %d", &n); err == nil { // v1, ns
			return time.Duration(n)
		}
	}
	return 0
}

// Remove deletes the cgroup once its processes have exited; it retries
// briefly, as the kernel frees an exited task's membership asynchronously.
func (l *cpuLimit) Remove() error {
	var err error
	for range 50 {
		if err = os.Remove(l.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(100 * time.Millisecond) // the kernel's cleanup, not a sync between our goroutines
	}
	return fmt.Errorf("remove cgroup %s: %w", l.dir, err)
}

func hasController(file, name string) bool {
	b, err := os.ReadFile(file)
	return err == nil && slices.Contains(strings.Fields(string(b)), name)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
