package metric

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// NewGoCollector returns the Go runtime's metrics under the names and with
// the meaning of client_golang's default Go collector: go_goroutines,
// go_threads, go_info, go_gc_duration_seconds, go_memstats_* (derived from
// runtime/metrics, without stopping the world), go_gc_gogc_percent,
// go_gc_gomemlimit_bytes and go_sched_gomaxprocs_threads.
func NewGoCollector() Collector { return goCollector{} }

type goCollector struct{}

// The runtime/metrics samples read per scrape, by index.
const (
	rmTinyAllocs = iota
	rmAllocsObjects
	rmFreesObjects
	rmAllocsBytes
	rmTotal
	rmHeapObjectsBytes
	rmHeapUnused
	rmHeapReleased
	rmHeapFree
	rmHeapObjects
	rmHeapStacks
	rmOSStacks
	rmMSpanInuse
	rmMSpanFree
	rmMCacheInuse
	rmMCacheFree
	rmProfBuckets
	rmMetaOther
	rmOther
	rmHeapGoal
	rmGOGC
	rmMemLimit
	rmGOMAXPROCS
	rmCount
)

var rmNames = [rmCount]string{
	"/gc/heap/tiny/allocs:objects", "/gc/heap/allocs:objects", "/gc/heap/frees:objects", "/gc/heap/allocs:bytes",
	"/memory/classes/total:bytes", "/memory/classes/heap/objects:bytes", "/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/released:bytes", "/memory/classes/heap/free:bytes", "/gc/heap/objects:objects",
	"/memory/classes/heap/stacks:bytes", "/memory/classes/os-stacks:bytes",
	"/memory/classes/metadata/mspan/inuse:bytes", "/memory/classes/metadata/mspan/free:bytes",
	"/memory/classes/metadata/mcache/inuse:bytes", "/memory/classes/metadata/mcache/free:bytes",
	"/memory/classes/profiling/buckets:bytes", "/memory/classes/metadata/other:bytes", "/memory/classes/other:bytes",
	"/gc/heap/goal:bytes", "/gc/gogc:percent", "/gc/gomemlimit:bytes", "/sched/gomaxprocs:threads",
}

// rmValues are one read of the samples in rmNames.
type rmValues [rmCount]uint64

// sum adds the values at the given indexes.
func (v *rmValues) sum(idx ...int) float64 {
	var s uint64
	for _, i := range idx {
		s += v[i]
	}
	return float64(s)
}

// goStat is one gauge or counter of the Go collector.
type goStat struct {
	name, help string
	typ        Type
	value      func(*rmValues) float64
}

// goStats follow client_golang's memStatsFromRM (go_collector_latest.go),
// which maps runtime/metrics onto the MemStats fields.
var goStats = []goStat{
	{"go_gc_gogc_percent", "Heap size target percentage configured by the user, otherwise 100. This value is set by the GOGC environment variable, and the runtime/debug.SetGCPercent function. Sourced from /gc/gogc:percent.", GaugeType, func(v *rmValues) float64 { return v.sum(rmGOGC) }},
	{"go_gc_gomemlimit_bytes", "Go runtime memory limit configured by the user, otherwise math.MaxInt64. This value is set by the GOMEMLIMIT environment variable, and the runtime/debug.SetMemoryLimit function. Sourced from /gc/gomemlimit:bytes.", GaugeType, func(v *rmValues) float64 { return v.sum(rmMemLimit) }},
	{"go_memstats_alloc_bytes", "Number of bytes allocated in heap and currently in use. Equals to /memory/classes/heap/objects:bytes.", GaugeType, func(v *rmValues) float64 { return v.sum(rmHeapObjectsBytes) }},
	{"go_memstats_alloc_bytes_total", "Total number of bytes allocated in heap until now, even if released already. Equals to /gc/heap/allocs:bytes.", CounterType, func(v *rmValues) float64 { return v.sum(rmAllocsBytes) }},
	{"go_memstats_buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table. Equals to /memory/classes/profiling/buckets:bytes.", GaugeType, func(v *rmValues) float64 { return v.sum(rmProfBuckets) }},
	{"go_memstats_frees_total", "Total number of heap objects frees. Equals to /gc/heap/frees:objects + /gc/heap/tiny/allocs:objects.", CounterType, func(v *rmValues) float64 { return v.sum(rmFreesObjects, rmTinyAllocs) }},
	{"go_memstats_gc_sys_bytes", "Number of bytes used for garbage collection system metadata. Equals to /memory/classes/metadata/other:bytes.", GaugeType, func(v *rmValues) float64 { return v.sum(rmMetaOther) }},
	{"go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes. Equals to /memory/classes/heap/objects:bytes.", GaugeType, func(v *rmValues) float64 { return v.sum(rmHeapObjectsBytes) }},
	{"go_memstats_heap_idle_bytes", "Number of heap bytes waiting to be used. Equals to /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.", GaugeType, func(v *rmValues) float64 { return v.sum(rmHeapReleased, rmHeapFree) }},
	{"go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes", GaugeType, func(v *rmValues) float64 { return v.sum(rmHeapObjectsBytes, rmHeapUnused) }},
	{"go_memstats_heap_objects", "Number of currently allocated objects. Equals to /gc/heap/objects:objects.", GaugeType, func(v *rmValues) float64 { return v.sum(rmHeapObjects) }},
	{"go_memstats_heap_released_bytes", "Number of heap bytes released to OS. Equals to /memory/classes/heap/released:bytes.", GaugeType, func(v *rmValues) float64 { return v.sum(rmHeapReleased) }},
	{"go_memstats_heap_sys_bytes", "Number of heap bytes obtained from system. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes + /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.", GaugeType, func(v *rmValues) float64 {
		return v.sum(rmHeapObjectsBytes, rmHeapUnused, rmHeapReleased, rmHeapFree)
	}},
	{"go_memstats_mallocs_total", "Total number of heap objects allocated, both live and gc-ed. Semantically a counter version for go_memstats_heap_objects gauge. Equals to /gc/heap/allocs:objects + /gc/heap/tiny/allocs:objects.", CounterType, func(v *rmValues) float64 { return v.sum(rmAllocsObjects, rmTinyAllocs) }},
	{"go_memstats_mcache_inuse_bytes", "Number of bytes in use by mcache structures. Equals to /memory/classes/metadata/mcache/inuse:bytes.", GaugeType, func(v *rmValues) float64 { return v.sum(rmMCacheInuse) }},
	{"go_memstats_mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system. Equals to /memory/classes/metadata/mcache/inuse:bytes + /memory/classes/metadata/mcache/free:bytes.", GaugeType, func(v *rmValues) float64 { return v.sum(rmMCacheInuse, rmMCacheFree) }},
	{"go_memstats_mspan_inuse_bytes", "Number of bytes in use by mspan structures. Equals to /memory/classes/metadata/mspan/inuse:bytes.", GaugeType, func(v *rmValues) float64 { return v.sum(rmMSpanInuse) }},
	{"go_memstats_mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system. Equals to /memory/classes/metadata/mspan/inuse:bytes + /memory/classes/metadata/mspan/free:bytes.", GaugeType, func(v *rmValues) float64 { return v.sum(rmMSpanInuse, rmMSpanFree) }},
	{"go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place. Equals to /gc/heap/goal:bytes.", GaugeType, func(v *rmValues) float64 { return v.sum(rmHeapGoal) }},
	{"go_memstats_other_sys_bytes", "Number of bytes used for other system allocations. Equals to /memory/classes/other:bytes.", GaugeType, func(v *rmValues) float64 { return v.sum(rmOther) }},
	{"go_memstats_stack_inuse_bytes", "Number of bytes obtained from system for stack allocator in non-CGO environments. Equals to /memory/classes/heap/stacks:bytes.", GaugeType, func(v *rmValues) float64 { return v.sum(rmHeapStacks) }},
	{"go_memstats_stack_sys_bytes", "Number of bytes obtained from system for stack allocator. Equals to /memory/classes/heap/stacks:bytes + /memory/classes/os-stacks:bytes.", GaugeType, func(v *rmValues) float64 { return v.sum(rmHeapStacks, rmOSStacks) }},
	{"go_memstats_sys_bytes", "Number of bytes obtained from system. Equals to /memory/classes/total:byte.", GaugeType, func(v *rmValues) float64 { return v.sum(rmTotal) }},
	{"go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously. Sourced from /sched/gomaxprocs:threads.", GaugeType, func(v *rmValues) float64 { return v.sum(rmGOMAXPROCS) }},
}

// The families client_golang's base Go collector adds to goStats.
var (
	goGCDuration = Family{Name: "go_gc_duration_seconds", Type: SummaryType,
		Help: "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles."}
	goGoroutines = Family{Name: "go_goroutines", Help: "Number of goroutines that currently exist.", Type: GaugeType}
	goInfo       = Family{Name: "go_info", Help: "Information about the Go environment.", Type: GaugeType, LabelNames: []string{"version"}}
	goLastGC     = Family{Name: "go_memstats_last_gc_time_seconds", Help: "Number of seconds since 1970 of last garbage collection.", Type: GaugeType}
	goThreads    = Family{Name: "go_threads", Help: "Number of OS threads created.", Type: GaugeType}
)

func (goCollector) describe(dst []Family) []Family {
	dst = append(dst, goGCDuration, goGoroutines, goInfo, goLastGC, goThreads)
	for _, s := range goStats {
		dst = append(dst, Family{Name: s.name, Help: s.help, Type: s.typ})
	}
	return dst
}

func (goCollector) collect(dst []Family) []Family {
	var samples [rmCount]metrics.Sample
	for i := range samples {
		samples[i].Name = rmNames[i]
	}
	metrics.Read(samples[:])
	var v rmValues
	for i, s := range samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	for _, s := range goStats {
		dst = append(dst, Family{Name: s.name, Help: s.help, Type: s.typ, Samples: []Sample{{Value: s.value(&v)}}})
	}
	gc := gcPauses()
	threads, _ := runtime.ThreadCreateProfile(nil)
	dst = append(dst,
		withSample(goGCDuration, gc.summary),
		withSample(goGoroutines, Sample{Value: float64(runtime.NumGoroutine())}),
		withSample(goInfo, Sample{LabelValues: []string{runtime.Version()}, Value: 1}),
		withSample(goLastGC, Sample{Value: gc.last}),
		withSample(goThreads, Sample{Value: float64(threads)}),
	)
	return dst
}

func withSample(f Family, s Sample) Family {
	f.Samples = []Sample{s}
	return f
}

// gcStats are client_golang's go_gc_duration_seconds (pause quantiles 0,
// .25, .5, .75 and 1, the total pause and the number of GCs) and the time
// of the last GC in Unix seconds.
type gcStats struct {
	summary Sample
	last    float64
}

func gcPauses() gcStats {
	var st debug.GCStats
	st.PauseQuantiles = make([]time.Duration, 5)
	debug.ReadGCStats(&st)
	s := Sample{Count: uint64(st.NumGC), Sum: st.PauseTotal.Seconds()}
	for i, q := range st.PauseQuantiles {
		s.Quantiles = append(s.Quantiles, Quantile{Quantile: float64(i) / 4, Value: q.Seconds()})
	}
	return gcStats{summary: s, last: float64(st.LastGC.UnixNano()) / 1e9}
}
