package main

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

// markerEnv is set in the environment of every process the harness starts,
// with the run's id as value, so that bench/run.sh's trap can find and end
// exactly those (and no other engineer's) processes if the harness itself
// dies.
const markerEnv = "SHOAL_BENCH_RUN"

// procs starts and ends the harness's child processes. Each child leads
// its own process group (nginx's workers stay in it), so ending it ends
// the whole tree. The set of live groups is mirrored to a pid file for
// bench/run.sh's trap. It is safe for concurrent use.
type procs struct {
	runID   string
	pidFile string
	logDir  string

	// mu guards live.
	mu   sync.Mutex
	live map[int]*proc
}

// proc is one started child process (the root of its process group).
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when Wait returned
	err  error         // Wait's result, valid after done
	log  string        // path of the combined stdout+stderr log
}

func newProcs(runID, workDir string) *procs {
	return &procs{
		runID:   runID,
		pidFile: filepath.Join(workDir, "pids"),
		logDir:  workDir,
		live:    make(map[int]*proc),
	}
}

// spec says how to start a process.
type spec struct {
	name string   // for logs and errors; also the log file's name
	args []string // argv, args[0] looked up in PATH
	cpus string   // taskset CPU list; empty means not pinned
	env  []string // added to the harness's environment
	// stdout, when set, receives the process's stdout instead of the log.
	stdout io.Writer
}

// start launches s. The process is ended by stop or stopAll.
func (ps *procs) start(s spec) (*proc, error) {
	argv := s.args
	if s.cpus != "" {
		argv = append([]string{"taskset", "-c", s.cpus}, argv...)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.name, err)
	}
	logPath := filepath.Join(ps.logDir, sanitize(s.name)+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.name, err)
	}
	defer logf.Close()
	cmd := &exec.Cmd{Path: path, Args: argv, Stdout: logf, Stderr: logf}
	if s.stdout != nil {
		cmd.Stdout = s.stdout
	}
	cmd.Env = append(append(os.Environ(), markerEnv+"="+ps.runID), s.env...)
	// taskset execs the program, so the pid is the program's. Pdeathsig
	// ends the child if the harness is killed outright; the trap in run.sh
	// covers grandchildren.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.name, err)
	}
	p := &proc{name: s.name, cmd: cmd, done: make(chan struct{}), log: logPath}
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

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the last lines of the process's log, for error messages.
func (p *proc) tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-8):], "\n")
}

// stop sends SIGTERM to p's process group, then SIGKILL after grace, and
// waits for p to exit.
func (ps *procs) stop(p *proc, grace time.Duration) {
	pgid := p.pid()
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

// stopAll stops every live process, in parallel.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	all := make([]*proc, 0, len(ps.live))
	for _, p := range ps.live {
		all = append(all, p)
	}
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Go(func() { ps.stop(p, 3*time.Second) })
	}
	wg.Wait()
}

func (ps *procs) writePidsLocked() {
	var b strings.Builder
	for pid := range ps.live {
		fmt.Fprintln(&b, pid)
	}
	_ = os.WriteFile(ps.pidFile, []byte(b.String()), 0o644)
}

// run runs s to completion under ctx, returning its stdout.
func (ps *procs) run(ctx context.Context, s spec, timeout time.Duration) (string, error) {
	var out strings.Builder
	s.stdout = &out
	p, err := ps.start(s)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	select {
	case <-p.done:
	case <-ctx.Done():
		ps.stop(p, time.Second)
		return out.String(), fmt.Errorf("%s: %w", s.name, ctx.Err())
	}
	ps.stop(p, time.Second)
	if p.err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", s.name, p.err, p.tail())
	}
	return out.String(), nil
}

// usage is what /proc says about a process tree at one moment.
type usage struct {
	ticks int64 // utime+stime of every process in the tree, in clock ticks
	rssKB int64 // VmRSS summed over the tree
	procs int   // processes in the tree
}

// treeUsage sums CPU time and RSS over root and all its descendants.
func treeUsage(root int) (usage, error) {
	pids, err := descendants(root)
	if err != nil {
		return usage{}, err
	}
	var u usage
	for _, pid := range pids {
		t, err := procTicks(pid)
		if err != nil {
			continue // exited in between
		}
		rss, _ := procRSS(pid)
		u.ticks += t
		u.rssKB += rss
		u.procs++
	}
	if u.procs == 0 {
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

// clockTicks is sysconf(_SC_CLK_TCK), which is 100 on every Linux
// architecture Go supports (USER_HZ); getconf confirms it when present.
func clockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 100
}
