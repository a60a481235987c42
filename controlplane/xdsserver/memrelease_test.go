package xdsserver

import (
	"testing"
	"time"
)

func signalled(r *releaser) bool {
	select {
	case <-r.burst:
		return true
	default:
		return false
	}
}

func TestReleaserFreesOnceABurstIsOver(t *testing.T) {
	freed := 0
	r := newReleaser(1000, time.Second, func() { freed++ })
	r.add(600)
	if signalled(r) {
		t.Fatal("burst signalled below the threshold")
	}
	r.add(600)
	if !signalled(r) {
		t.Fatal("no burst signalled at the threshold")
	}
	r.start()
	r.add(300) // still pushing: a quarter of the threshold or more
	if r.check() || freed != 0 {
		t.Fatal("freed while the burst went on")
	}
	r.add(100) // a trickle
	done := r.check()
	r.wait()
	if !done || freed != 1 {
		t.Fatalf("check after the burst: freed %d times, want 1", freed)
	}
	if got := r.pushed.Load(); got != 0 {
		t.Errorf("pushed = %d after the release, want 0", got)
	}
	r.add(999)
	if signalled(r) {
		t.Fatal("burst signalled again below the threshold")
	}
}
