package main

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shoal-mesh/shoal/bench/internal/proc"
	"github.com/shoal-mesh/shoal/internal/freeport"
)

// appJS is the Node.js instance's program.
//
//go:embed app.js
var appJS []byte

// instance is one Node.js process of the fleet.
type instance struct {
	ID   string `json:"id"`
	Role string `json:"role"` // what is wrong with it, for the report
	Addr string `json:"addr"`
	p    *proc.Proc
}

// fleet is the control plane and the three Node.js instances.
type fleet struct {
	instances                     []*instance
	etcd, xds, api, admin, gossip string
	cp                            *proc.Proc
	limit                         *cpuLimit // nil when the fallback was used
	// CPUNote says how the half-CPU instance is limited.
	CPUNote string
}

// startControlPlane starts `shoal controlplane` with its embedded etcd, in
// which the Node.js instances register.
func (h *harness) startControlPlane(ctx context.Context) error {
	addrs := make([]string, 6)
	for i := range addrs {
		a, err := freeport.Addr()
		if err != nil {
			return err
		}
		addrs[i] = a
	}
	f := &h.fleet
	f.etcd, f.xds, f.api, f.admin, f.gossip = addrs[0], addrs[2], addrs[3], addrs[4], addrs[5]
	p, err := h.ps.Start(proc.Spec{
		Name: "shoal-controlplane",
		Args: []string{h.cfg.ShoalBin, "controlplane", "--data-dir", filepath.Join(h.work, "cp-data"),
			"--etcd-listen", f.etcd, "--etcd-peer-listen", addrs[1], "--xds-listen", f.xds,
			"--api-listen", f.api, "--admin-listen", f.admin, "--gossip-listen", f.gossip,
			"--log-level", "warn"},
	})
	if err != nil {
		return err
	}
	f.cp = p
	err = poll(ctx, 60*time.Second, p, func() error {
		_, err := getBody("http://"+f.admin+"/ready", 2*time.Second)
		return err
	})
	if err != nil {
		return fmt.Errorf("control plane not ready: %w\n%s", err, p.Tail())
	}
	return nil
}

// calibrate asks node how many iterations of the work loop take WorkMS of
// CPU, once, so that every instance does the same work per request.
func (h *harness) calibrate(ctx context.Context, app string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, h.cfg.NodeBin, app, "--calibrate").Output()
	if err != nil {
		return 0, fmt.Errorf("node %s --calibrate: %w", app, err)
	}
	perMS, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, fmt.Errorf("node --calibrate printed %q", out)
	}
	return int(float64(perMS) * h.cfg.WorkMS), nil
}

// startFleet starts the three instances: healthy, stalling, and limited to
// CPUQuota CPUs by a cgroup (or, without a usable cgroup, doing
// 1/CPUQuota times the work per request, which the report says).
func (h *harness) startFleet(ctx context.Context) error {
	app := filepath.Join(h.work, "app.js")
	if err := os.WriteFile(app, appJS, 0o644); err != nil {
		return err
	}
	iters, err := h.calibrate(ctx, app)
	if err != nil {
		return err
	}
	pkg, err := filepath.Abs(h.cfg.NodePkg)
	if err != nil {
		return err
	}
	stallMS := strconv.FormatInt(h.cfg.Stall.Milliseconds(), 10)
	stallHow, stallCPU := "waiting", "0"
	if h.cfg.StallCPU {
		stallHow, stallCPU = "burning CPU", "1"
	}
	stallRole := "event loop blocked " + stallMS + " ms every second (" + stallHow + ")"
	if h.cfg.Stall == 0 {
		stallRole = "healthy (--stall 0: the fleet without the stall, for reference)"
	}
	specs := []struct {
		id, role string
		env      []string
		limited  bool
	}{
		{id: "a", role: "healthy"},
		{id: "b", role: stallRole, env: []string{"STALL_MS=" + stallMS, "STALL_CPU=" + stallCPU}},
		{id: "c", role: fmt.Sprintf("limited to %g CPU", h.cfg.CPUQuota), limited: true},
	}
	for _, s := range specs {
		env := append([]string{"SHOAL_NODE_PKG=" + pkg, "INSTANCE_ID=" + s.id, "SHOAL_ETCD=http://" + h.fleet.etcd,
			"WORK_ITERS=" + strconv.Itoa(iters)}, s.env...)
		args := []string{h.cfg.NodeBin, app}
		if s.limited {
			if args, env, err = h.limitCPU(args, env, iters); err != nil {
				return err
			}
		}
		inst, err := h.startInstance(s.id, s.role, args, env)
		if err != nil {
			return err
		}
		h.fleet.instances = append(h.fleet.instances, inst)
	}
	fmt.Fprintf(os.Stderr, "lbbench: %d work iterations per request (%g ms of CPU); %s\n", iters, h.cfg.WorkMS, h.fleet.CPUNote)
	return nil
}

// limitCPU puts the instance in a new cgroup with a CPU quota: the shell
// moves itself into the cgroup, then execs node, so node never runs
// outside it. Without cgroups, the instance does 1/CPUQuota times the work.
func (h *harness) limitCPU(args, env []string, iters int) ([]string, []string, error) {
	lim, err := newCPULimit(fmt.Sprintf("shoal-lbbench-%d", os.Getpid()), h.cfg.CPUQuota)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lbbench: no cgroup CPU limit (%v); instance c does %g× the work instead\n", err, 1/h.cfg.CPUQuota)
		h.fleet.CPUNote = fmt.Sprintf("no cgroup CPU limit here (%v): instance c does %g× the work per request instead", err, 1/h.cfg.CPUQuota)
		env = append(env, "WORK_ITERS="+strconv.Itoa(int(float64(iters)/h.cfg.CPUQuota)))
		return args, env, nil
	}
	h.fleet.limit = lim
	h.fleet.CPUNote = "instance c: " + lim.String()
	script := `echo $$ > "$0" && exec "$@"`
	return append([]string{"sh", "-c", script, lim.procsFile()}, args...), env, nil
}

// startInstance starts one Node.js instance and waits for the port it
// registered.
func (h *harness) startInstance(id, role string, args, env []string) (*instance, error) {
	pr, pw := io.Pipe()
	p, err := h.ps.Start(proc.Spec{Name: "node-" + id, Args: args, Env: env, Stdout: pw})
	if err != nil {
		return nil, err
	}
	addr, err := readListening(pr, 30*time.Second)
	go io.Copy(io.Discard, pr) // keep draining; the pipe closes when the process exits
	if err != nil {
		return nil, fmt.Errorf("node instance %s: %w\n%s", id, err, p.Tail())
	}
	return &instance{ID: id, Role: role, Addr: addr, p: p}, nil
}

func readListening(r io.Reader, timeout time.Duration) (string, error) {
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		got <- strings.TrimSpace(line)
	}()
	select {
	case line := <-got:
		addr, ok := strings.CutPrefix(line, "listening ")
		if !ok {
			return "", fmt.Errorf("unexpected first line %q", line)
		}
		return addr, nil
	case <-time.After(timeout):
		return "", errors.New("no address printed")
	}
}

func (f *fleet) addrs() []string {
	out := make([]string, len(f.instances))
	for i, in := range f.instances {
		out[i] = in.Addr
	}
	return out
}

func (f *fleet) ids() []string {
	out := make([]string, len(f.instances))
	for i, in := range f.instances {
		out[i] = in.ID
	}
	return out
}

// toggleStall pauses b's stall, or resumes it (app.js, SIGUSR2).
func (f *fleet) toggleStall() error {
	for _, in := range f.instances {
		if in.ID == "b" {
			return syscall.Kill(in.p.Pid(), syscall.SIGUSR2)
		}
	}
	return errors.New("no instance b")
}

// idOf maps an instance's address to its id.
func (f *fleet) idOf() map[string]string {
	out := make(map[string]string, len(f.instances))
	for _, in := range f.instances {
		out[in.Addr] = in.ID
	}
	return out
}
