package proc

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses, as proc(5) allows.
	line := "4242 (nginx: (worker) x) S 4200 4200 4200 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 1 0 99 0 0"
	got, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := (stat{ppid: 4200, utime: 1234, stime: 567}); got != want {
		t.Errorf("parseStat() = %+v, want %+v", got, want)
	}
	if _, err := parseStat("4242 (x) S 1"); err == nil {
		t.Error("parseStat(short line) succeeded, want an error")
	}
}

func TestTreeUsageOfSelf(t *testing.T) {
	u, err := TreeUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.Procs < 1 || u.RSSKB <= 0 {
		t.Errorf("TreeUsage(self) = %+v, want at least one process with RSS", u)
	}
}

func TestGroupStopEndsTheWholeProcessGroup(t *testing.T) {
	g := NewGroup("test", t.TempDir())
	// The shell's background child stands in for nginx's worker.
	p, err := g.Start(Spec{Name: "tree", Args: []string{"sh", "-c", "sleep 60 & echo started; wait"}})
	if err != nil {
		t.Fatal(err)
	}
	var u Usage
	deadline := time.Now().Add(10 * time.Second)
	for u.Procs < 2 && time.Now().Before(deadline) {
		u, _ = TreeUsage(p.Pid())
		time.Sleep(10 * time.Millisecond) // polling /proc: there is nothing to wait on
	}
	if u.Procs < 2 {
		t.Fatalf("TreeUsage found %d processes, want the shell and its child", u.Procs)
	}
	pids, _ := descendants(p.Pid())
	b, _ := os.ReadFile(g.pidFile)
	if !strings.Contains(string(b), "\n") {
		t.Errorf("pid file %q lists no process", b)
	}
	g.Stop(p, time.Second)
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			if st, err := readStat(pid); err == nil && st.ppid != 1 {
				t.Errorf("process %d still alive after Stop", pid)
			}
		}
	}
	if b, _ := os.ReadFile(g.pidFile); len(strings.TrimSpace(string(b))) != 0 {
		t.Errorf("pid file after Stop = %q, want empty", b)
	}
}
