// Package demo runs `shoal demo`: a whole mesh on one machine — embedded
// etcd and the control plane, N Node.js instances each with a sidecar, and
// a gateway — then drives traffic through each load-balancing strategy,
// prints the distribution per instance, shows mTLS between the sidecars
// with an authorization policy that denies one caller, kills one instance
// and shows the failover. Everything it starts is stopped when it returns.
package demo

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-mesh/shoal/controlplane"
	"github.com/shoal-mesh/shoal/sidecar"
)

//go:embed app.js
var appJS []byte

// Config configures a demo run.
type Config struct {
	// Instances is the number of Node.js instances; zero means 3.
	Instances int
	// Requests per strategy; zero means 3000.
	Requests int
	// Concurrency of the load; zero means 16.
	Concurrency int
	// Keep leaves the mesh running until ctx is done.
	Keep bool
	// Out receives the progress and the tables.
	Out io.Writer
	// LogFile receives the components' logs; empty means a file in the
	// demo's temporary directory.
	LogFile string
}

// mesh is what the demo started.
type mesh struct {
	cfg     Config
	dir     string
	log     *slog.Logger
	cp      *controlplane.Server
	apps    []*exec.Cmd
	appIDs  []string
	gateway *sidecar.Proxy
	gwAddr  string
	gwAdmin string
	// appAddrs are the instances' host:port, parallel to appIDs.
	appAddrs []string
	// inAddrs are the instances' sidecar mTLS listeners (what is
	// registered and what the gateway calls), parallel to appIDs.
	inAddrs []string
	// tokens are the join tokens by service (web, gateway, batch).
	tokens map[string]string
	// batchAddr is the batch sidecar's --upstream port for web: a caller
	// with an identity that the demo's policy denies.
	batchAddr string

	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// Run runs the demo until it is done (or, with Keep, until ctx is done).
func Run(ctx context.Context, cfg Config) error {
	if cfg.Instances <= 0 {
		cfg.Instances = 3
	}
	if cfg.Requests <= 0 {
		cfg.Requests = 3000
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if _, err := exec.LookPath("node"); err != nil {
		return errors.New("demo: node (Node.js >= 20) is not on PATH")
	}
	dir, err := os.MkdirTemp("", "shoal-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if cfg.LogFile == "" {
		cfg.LogFile = filepath.Join(dir, "mesh.log")
	}
	lf, err := os.Create(cfg.LogFile)
	if err != nil {
		return err
	}
	defer lf.Close()
	m := &mesh{cfg: cfg, dir: dir, log: slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	mctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	defer m.stop()
	start := time.Now()
	if err := m.start(mctx); err != nil {
		return err
	}
	m.printf("mesh up in %s (logs: %s)\n\n", time.Since(start).Round(time.Millisecond), cfg.LogFile)
	if err := m.scenarios(ctx); err != nil {
		return err
	}
	m.printf("\ndemo finished in %s\n", time.Since(start).Round(100*time.Millisecond))
	if cfg.Keep {
		m.printKeep()
		m.trickle(ctx)
	}
	return nil
}

func (m *mesh) printf(format string, args ...any) { fmt.Fprintf(m.cfg.Out, format, args...) }

// stop stops everything the demo started, in reverse order.
func (m *mesh) stop() {
	for _, c := range m.apps {
		if c != nil && c.Process != nil {
			c.Process.Kill()
		}
	}
	m.cancel()
	m.wg.Wait()
	for _, c := range m.apps {
		if c != nil && c.Process != nil {
			c.Wait()
		}
	}
}

// goRun runs f in the background until the mesh stops.
func (m *mesh) goRun(name string, f func() error) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := f(); err != nil {
			m.log.Error("component stopped", "component", name, "err", err)
		}
	}()
}

// startApp starts one Node.js instance.
func (m *mesh) startApp(id string, port int, delay time.Duration) (*exec.Cmd, error) {
	script := filepath.Join(m.dir, "app.js")
	if err := os.WriteFile(script, appJS, 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("node", script)
	cmd.Env = append(os.Environ(), "INSTANCE_ID="+id, "PORT="+strconv.Itoa(port), fmt.Sprintf("DELAY_MS=%d", delay.Milliseconds()))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := os.Create(filepath.Join(m.dir, id+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("demo: start node: %w", err)
	}
	return cmd, nil
}
