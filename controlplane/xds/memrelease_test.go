package xds

import "testing"

func TestReleaserFreesOnceABurstIsOver(t *testing.T) {
	freed := 0
	r := newReleaser(1000, 0, func() { freed++ })
	r.add(600)
	select {
	case <-r.burst:
		t.Fatal("burst signalled below the threshold")
	default:
	}
	r.add(600)
	select {
	case <-r.burst:
	default:
		t.Fatal("no burst signalled at the threshold")
	}
	r.start()
	r.add(100) // still pushing (trickle is threshold/64)
	if r.check() || freed != 0 {
		t.Fatal("freed while pushes went on")
	}
	r.add(10) // a trickle
	if !r.check() || freed != 1 {
		t.Fatalf("check after the burst: freed %d times, want 1", freed)
	}
	if got := r.pushed.Load(); got != 0 {
		t.Errorf("pushed = %d after the release, want 0", got)
	}
	r.add(999)
	select {
	case <-r.burst:
		t.Fatal("burst signalled again below the threshold")
	default:
	}
}
