package harness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// PM2 is a PM2 daemon of the test's own: its PM2_HOME is a temporary
// directory, so it never meets the user's PM2, and `pm2 kill` stops it (and
// its workers) at cleanup.
type PM2 struct {
	t   testing.TB
	bin string
	env []string
}

// StartPM2 prepares a private PM2 (the daemon starts with the first
// command). env is added to every command's environment, and so to the
// daemon's and its workers'. PM2 comes from e2e/pm2/node_modules (`make
// node-deps`); without it the test is Unavailable.
func StartPM2(t testing.TB, env ...string) *PM2 {
	t.Helper()
	bin := filepath.Join(RepoRoot(t), "e2e", "pm2", "node_modules", ".bin", "pm2")
	if _, err := os.Stat(bin); err != nil {
		Unavailable(t, "e2e/pm2/node_modules is missing: run `make node-deps` (npm ci in e2e/pm2) to test PM2")
	}
	if _, err := exec.LookPath("node"); err != nil {
		Unavailable(t, "node is not installed: the PM2 test needs Node.js >= 20")
	}
	// A short PM2_HOME: PM2 puts unix sockets there (108-byte path limit).
	home, err := os.MkdirTemp("", "pm2")
	if err != nil {
		t.Fatal(err)
	}
	p := &PM2{t: t, bin: bin, env: append([]string{"PM2_HOME=" + home}, env...)}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("SHOAL_E2E_LOGS") != "" {
			out, _ := p.run(DefaultTimeout, "logs", "--nostream", "--lines", "200")
			t.Logf("--- pm2 logs ---\n%s", out)
		}
		if out, err := p.run(DefaultTimeout, "kill"); err != nil {
			t.Errorf("pm2 kill: %v\n%s", err, out)
		}
		os.RemoveAll(home)
	})
	return p
}

// Run runs `pm2 args...` to completion (within DefaultTimeout) and fails
// the test if it exits non-zero. It returns the combined output.
func (p *PM2) Run(args ...string) string {
	p.t.Helper()
	out, err := p.run(DefaultTimeout, args...)
	if err != nil {
		p.t.Fatalf("pm2 %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (p *PM2) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Dir = RepoRoot(p.t)
	// The daemon a first command spawns must not hold our pipes open.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}
