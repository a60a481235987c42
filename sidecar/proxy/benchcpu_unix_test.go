//go:build unix

package proxy

import (
	"syscall"
	"testing"
	"time"
)

// reportCPU reports the process's CPU time (user and system, all
// goroutines: client, proxy, backend and the access log's writer) per
// operation as cpu-ns/op, which a busy machine disturbs less than the
// wall time. Call the returned function when the loop is done.
func reportCPU(b *testing.B) func() {
	before := processCPU(b)
	return func() { b.ReportMetric(float64(processCPU(b)-before)/float64(b.N), "cpu-ns/op") }
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
