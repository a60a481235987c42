// Package proc starts and ends the benchmark harnesses' child processes
// and reads their CPU time and memory from /proc.
package proc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MarkerEnv is set in the environment of every process the harness starts,
// with the run's id as value, so that bench/run.sh's trap can find and end
// exactly those (and no other engineer's) processes if the harness itself
// dies.
const MarkerEnv = "SHOAL_BENCH_RUN"

// Group starts and ends the harness's child processes. Each child leads
// its own process group (nginx's workers stay in it), so ending it ends
// the whole tree. The set of live groups is mirrored to a pid file for
// bench/run.sh's trap. It is safe for concurrent use.
type Group struct {
	runID   string
	pidFile string
	logDir  string

	// mu guards live.
	mu   sync.Mutex
	live map[int]*Proc
}

// Proc is one started child process (the root of its process group).
type Proc struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{} // closed when Wait returned
	err  error         // Wait's result, valid after done; see Err
	log  string        // path of the combined stdout+stderr log
}

func NewGroup(runID, workDir string) *Group {
	return &Group{
		runID:   runID,
		pidFile: filepath.Join(workDir, "pids"),
		logDir:  workDir,
		live:    make(map[int]*Proc),
	}
}

// Spec says how to start a process.
type Spec struct {
	Name string   // for logs and errors; also the log file's name
	Args []string // argv, Args[0] looked up in PATH
	CPUs string   // taskset CPU list; empty means not pinned
	Env  []string // added to the harness's environment
	// Stdout, when set, receives the process's stdout instead of the log.
	Stdout io.Writer
}

// Start launches s. The process is ended by Stop or StopAll.
func (ps *Group) Start(s Spec) (*Proc, error) {
	argv := s.Args
	if s.CPUs != "" {
		argv = append([]string{"taskset", "-c", s.CPUs}, argv...)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	logPath := filepath.Join(ps.logDir, sanitize(s.Name)+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	defer logf.Close()
	cmd := &exec.Cmd{Path: path, Args: argv, Stdout: logf, Stderr: logf}
	if s.Stdout != nil {
		cmd.Stdout = s.Stdout
	}
	cmd.Env = append(append(os.Environ(), MarkerEnv+"="+ps.runID), s.Env...)
	// taskset execs the program, so the pid is the program's. Pdeathsig
	// ends the child if the harness is killed outright; the trap in run.sh
	// covers grandchildren.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	p := &Proc{Name: s.Name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.live[cmd.Process.Pid] = p
	ps.writePidsLocked()
	ps.mu.Unlock()
	return p, nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, s)
}

// Pid is the process's id, also its process group's.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Err is the process's exit error once Exited reports true.
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Tail returns the last lines of the process's log, for error messages.
func (p *Proc) Tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-8):], "\n")
}

// Stop sends SIGTERM to p's process group, then SIGKILL after grace, and
// waits for p to exit.
func (ps *Group) Stop(p *Proc, grace time.Duration) {
	pgid := p.Pid()
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Workers that outlived their leader still hold the group id.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	ps.mu.Lock()
	delete(ps.live, pgid)
	ps.writePidsLocked()
	ps.mu.Unlock()
}

// StopAll stops every live process, in parallel.
func (ps *Group) StopAll() {
	ps.mu.Lock()
	all := make([]*Proc, 0, len(ps.live))
	for _, p := range ps.live {
		all = append(all, p)
	}
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Go(func() { ps.Stop(p, 3*time.Second) })
	}
	wg.Wait()
}

func (ps *Group) writePidsLocked() {
	var b strings.Builder
	for pid := range ps.live {
		fmt.Fprintln(&b, pid)
	}
	_ = os.WriteFile(ps.pidFile, []byte(b.String()), 0o644)
}

// Run runs s to completion under ctx, returning its stdout.
func (ps *Group) Run(ctx context.Context, s Spec, timeout time.Duration) (string, error) {
	var out strings.Builder
	s.Stdout = &out
	p, err := ps.Start(s)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	select {
	case <-p.done:
	case <-ctx.Done():
		ps.Stop(p, time.Second)
		return out.String(), fmt.Errorf("%s: %w", s.Name, ctx.Err())
	}
	ps.Stop(p, time.Second)
	if p.err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", s.Name, p.err, p.Tail())
	}
	return out.String(), nil
}

// Usage is what /proc says about a process tree at one moment.
type Usage struct {
	Ticks int64 // utime+stime of every process in the tree, in clock ticks
	RSSKB int64 // VmRSS summed over the tree
	Procs int   // processes in the tree
}

// TreeUsage sums CPU time and RSS over root and all its descendants.
func TreeUsage(root int) (Usage, error) {
	pids, err := descendants(root)
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	for _, pid := range pids {
		t, err := procTicks(pid)
		if err != nil {
			continue // exited in between
		}
		rss, _ := procRSS(pid)
		u.Ticks += t
		u.RSSKB += rss
		u.Procs++
	}
	if u.Procs == 0 {
		return u, fmt.Errorf("process %d is gone", root)
	}
	return u, nil
}

// descendants returns root and every process below it, from /proc.
func descendants(root int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			children[st.ppid] = append(children[st.ppid], pid)
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}

type stat struct {
	ppid         int
	utime, stime int64
}

// readStat parses /proc/<pid>/stat (proc(5)); the command name may hold
// spaces and parentheses, so fields are counted from the last ')'.
func readStat(pid int) (stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	return parseStat(string(b))
}

func parseStat(s string) (stat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stat{}, errors.New("malformed stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return stat{}, errors.New("short stat")
	}
	var st stat
	var err1, err2, err3 error
	st.ppid, err1 = strconv.Atoi(f[1])
	st.utime, err2 = strconv.ParseInt(f[11], 10, 64)
	st.stime, err3 = strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return stat{}, err
	}
	return st, nil
}

func procTicks(pid int) (int64, error) {
	st, err := readStat(pid)
	return st.utime + st.stime, err
}

// procRSS returns VmRSS in kB from /proc/<pid>/status.
func procRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, sc.Err()
}

// ClockTicks is sysconf(_SC_CLK_TCK), which is 100 on every Linux
// architecture Go supports (USER_HZ); getconf confirms it when present.
func ClockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 100
}
