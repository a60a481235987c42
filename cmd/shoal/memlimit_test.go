package main

import (
	"runtime"
	"testing"
)

// Heap profile samples are kept only when --pprof can serve them, unless
// GODEBUG=memprofilerate asks for them.
func TestSetHeapProfiling(t *testing.T) {
	defer func(r int) { runtime.MemProfileRate = r }(runtime.MemProfileRate)
	tests := []struct {
		name    string
		godebug string
		pprof   bool
		want    int
	}{
		{"sampled with --pprof", "", true, 4096},
		{"off without --pprof", "", false, 0},
		{"GODEBUG=memprofilerate wins", "gctrace=0,memprofilerate=4096", false, 4096},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GODEBUG", tc.godebug)
			runtime.MemProfileRate = 4096
			setHeapProfiling(tc.pprof)
			if runtime.MemProfileRate != tc.want {
				t.Errorf("MemProfileRate = %d, want %d", runtime.MemProfileRate, tc.want)
			}
		})
	}
}
