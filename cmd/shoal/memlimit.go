package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// defaultProxyMemoryLimit is the sidecar's and gateway's default soft
// memory limit, and defaultProxyGCPercent their default GOGC. The data
// path allocates nothing per request, so the heap only grows with
// configuration (about 2 MiB live with 1,000 endpoints) and background
// work (gossip, health checks, a few KiB a second). GOGC=100 would let it
// reach twice the live heap between collections and the runtime keeps
// those pages; 50 bounds that at one and a half times for a collection
// every few minutes. Issue #7 wants RSS < 20 MB with 1,000 endpoints
// loaded. The limit is soft: a larger live heap is still served, with
// more frequent collections (the runtime caps GC at about half the CPU).
// GOMEMLIMIT and GOGC in the environment win over these defaults.
const (
	defaultProxyMemoryLimit = "16MiB"
	defaultProxyGCPercent   = 50
)

// memoryLimitFlag is --memory-limit: bytes with an optional B, KiB, MiB
// or GiB suffix; 0 disables. An explicit GOMEMLIMIT in the environment
// wins over the default but not over the flag given on the command line.
// v is the default.
type memoryLimitFlag struct {
	v   string
	n   int64
	set bool
	// gcPercent, if not zero, is set as GOGC unless the environment sets
	// GOGC.
	gcPercent int
}

func (m *memoryLimitFlag) String() string { return m.v }

// Type names the value in help output (pflag.Value).
func (m *memoryLimitFlag) Type() string { return "bytes" }

func (m *memoryLimitFlag) Set(v string) error {
	n, err := parseBytes(v)
	if err != nil {
		return fmt.Errorf("want bytes with an optional B, KiB, MiB or GiB suffix: %w", err)
	}
	m.v, m.n, m.set = v, n, true
	return nil
}

// apply sets the runtime's memory limit, and m.gcPercent as GOGC unless
// the environment sets it.
func (m *memoryLimitFlag) apply() {
	if m.gcPercent != 0 && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(m.gcPercent)
	}
	if !m.set {
		if os.Getenv("GOMEMLIMIT") != "" {
			return
		}
		m.n, _ = parseBytes(m.v)
	}
	if m.n > 0 {
		debug.SetMemoryLimit(m.n)
	}
}

// setHeapProfiling keeps the runtime's heap profile sampling only where
// the profile can be read, /debug/pprof/heap (--pprof). Otherwise nobody
// reads the samples, and each new call stack sampled costs a record and a
// page of a 1.4 MB hash table: about 0.2 MiB of a sidecar's RSS
// (bench/rss.sh). GODEBUG=memprofilerate=N in the environment wins.
func setHeapProfiling(on bool) {
	if !on && !strings.Contains(os.Getenv("GODEBUG"), "memprofilerate=") {
		runtime.MemProfileRate = 0
	}
}

func parseBytes(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = num, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
