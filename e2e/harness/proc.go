// Package harness runs shoal's end-to-end tests over real processes: the
// shoal binary (control plane, sidecars, gateway), embedded etcd inside the
// control plane, and Node.js example services, all on loopback with free
// ports and temporary directories, so tests may run in parallel. It offers
// the fault verbs the resilience tests use: kill -9, SIGSTOP/SIGCONT,
// SIGTERM and restart.
package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/internal/freeport"
)

// DefaultTimeout bounds every wait in the harness.
const DefaultTimeout = 30 * time.Second

// Proc is a child process whose output is kept for the test log.
type Proc struct {
	t    testing.TB
	name string
	args []string
	env  []string
	dir  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{} // closed when the current process has exited
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Start runs name with args; the process is killed at test cleanup and its
// output is logged if the test failed.
func Start(t testing.TB, name string, env []string, args ...string) *Proc {
	t.Helper()
	p := &Proc{t: t, name: name, args: args, env: env, out: &lockedBuffer{}}
	p.start()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() || os.Getenv("SHOAL_E2E_LOGS") != "" {
			t.Logf("--- output of %s %s ---\n%s", filepath.Base(name), strings.Join(args, " "), p.Output())
		}
	})
	return p
}

func (p *Proc) start() {
	p.t.Helper()
	cmd := exec.Command(p.name, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("harness: start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
}

// Output returns everything the process (and its earlier incarnations)
// printed.
func (p *Proc) Output() string { return p.out.String() }

// PID returns the current process id.
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

func (p *Proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	cmd.Process.Signal(sig)
}

// Kill sends SIGKILL (kill -9) and waits for the exit.
func (p *Proc) Kill() {
	p.signal(syscall.SIGKILL)
	p.Wait(DefaultTimeout)
}

// Term sends SIGTERM and waits up to timeout for a graceful exit; it
// returns false if the process had to be killed.
func (p *Proc) Term(timeout time.Duration) bool {
	p.signal(syscall.SIGTERM)
	if p.Wait(timeout) {
		return true
	}
	p.Kill()
	return false
}

// Pause sends SIGSTOP; Resume sends SIGCONT.
func (p *Proc) Pause()  { p.signal(syscall.SIGSTOP) }
func (p *Proc) Resume() { p.signal(syscall.SIGCONT) }

// Wait waits up to timeout for the process to exit.
func (p *Proc) Wait(timeout time.Duration) bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Exited reports whether the process has exited. (Not Wait(0): a select
// between a closed channel and an expired timer picks either at random.)
func (p *Proc) Exited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// ExitCode returns the exit code of an exited process (-1 if signalled).
func (p *Proc) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.ProcessState.ExitCode()
}

// Restart starts the process again with the same arguments (after it
// exited or was killed).
func (p *Proc) Restart() {
	p.t.Helper()
	if !p.Exited() {
		p.Kill()
	}
	p.start()
}

// FreePort returns a loopback port that is free (TCP and UDP), outside
// the kernel's ephemeral range so that no outgoing connection takes it
// before the process it is meant for binds it (see internal/freeport).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freeport.Port()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return p
}

// FreeAddr returns "127.0.0.1:<free port>".
func FreeAddr(t testing.TB) string { return fmt.Sprintf("127.0.0.1:%d", FreePort(t)) }

// Eventually polls cond every 20ms until it holds, failing the test after
// timeout. It returns how long it took.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("harness: %s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// RepoRoot returns the repository root (where go.mod is).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// Binary returns the shoal binary: $SHOAL_BIN if set (the README's test
// command builds it), otherwise a build into a temporary directory, once
// per test process.
func Binary(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("SHOAL_BIN"); b != "" {
		return b
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "shoal-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "shoal")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", builtBin, "./cmd/shoal")
		cmd.Dir = RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("harness: %v", buildErr)
	}
	return builtBin
}
