//go:build linux

package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// netnsPrefix starts the name of every namespace the harness creates:
// "shoal-<pid>-<n>", so a sweep can tell its own leftovers from anyone
// else's.
const netnsPrefix = "shoal-"

var netnsSeq atomic.Int32

// NetnsUnavailable returns why network-namespace tests cannot run here
// (not root, no `ip`, namespaces refused), or "" when they can. It creates
// and deletes a probe namespace.
func NetnsUnavailable() string {
	if os.Geteuid() != 0 {
		return "needs root to create network namespaces (euid " + strconv.Itoa(os.Geteuid()) + ")"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "needs iproute2's `ip` for network namespaces: " + err.Error()
	}
	name := fmt.Sprintf("%s%d-probe", netnsPrefix, os.Getpid())
	if out, err := ipCmd("netns", "add", name); err != nil {
		return "`ip netns add` failed: " + strings.TrimSpace(out)
	}
	ipCmd("netns", "del", name)
	return ""
}

// NetPair is two fresh network namespaces joined by one veth pair: A's end
// has AddrA, B's end AddrB, in one /30. Each namespace's loopback is up, so
// processes in one namespace may also use 127.0.0.1 privately (fixed ports
// are free there). Cut and Heal take the link down and up.
type NetPair struct {
	A, B         *Netns
	AddrA, AddrB string // IPv4 addresses on the veth ends
	devB         string
}

// Netns is a named network namespace (/var/run/netns/NAME).
type Netns struct{ Name string }

// StartNetPair creates a NetPair, deleting it (and with it the veth) at
// test cleanup; cleanup runs even when the test fails. Call
// NetnsUnavailable first and skip when it answers.
//
// The addresses are 10.213.0.1/30 and 10.213.0.2/30: they exist only inside
// the two namespaces, so concurrent pairs (other tests, other test
// processes) never collide and the host's own network is not touched.
func StartNetPair(t testing.TB) *NetPair {
	t.Helper()
	sweepNetns()
	n := netnsSeq.Add(1)
	base := fmt.Sprintf("%s%d-%d", netnsPrefix, os.Getpid(), n)
	p := &NetPair{A: &Netns{Name: base + "a"}, B: &Netns{Name: base + "b"}, AddrA: "10.213.0.1", AddrB: "10.213.0.2"}
	// Interface names are at most 15 bytes; the namespace tells them apart.
	devA, devB := fmt.Sprintf("sh%d-%da", os.Getpid()%1e7, n), fmt.Sprintf("sh%d-%db", os.Getpid()%1e7, n)
	p.devB = devB
	t.Cleanup(func() {
		for _, ns := range []*Netns{p.A, p.B} {
			if out, err := ipCmd("netns", "del", ns.Name); err != nil && !strings.Contains(out, "No such file") {
				t.Errorf("harness: delete netns %s: %v: %s", ns.Name, err, out)
			}
		}
		ipCmd("link", "del", devA) // only if it never reached its namespace
	})
	steps := [][]string{
		{"netns", "add", p.A.Name},
		{"netns", "add", p.B.Name},
		{"link", "add", devA, "type", "veth", "peer", "name", devB},
		{"link", "set", devA, "netns", p.A.Name},
		{"link", "set", devB, "netns", p.B.Name},
		{"-n", p.A.Name, "addr", "add", p.AddrA + "/30", "dev", devA},
		{"-n", p.B.Name, "addr", "add", p.AddrB + "/30", "dev", devB},
		{"-n", p.A.Name, "link", "set", devA, "up"},
		{"-n", p.B.Name, "link", "set", devB, "up"},
		{"-n", p.A.Name, "link", "set", "lo", "up"},
		{"-n", p.B.Name, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if out, err := ipCmd(s...); err != nil {
			t.Fatalf("harness: ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return p
}

// Cut partitions the pair: B's veth end goes down, so neither side can
// send to the other (the connected route disappears on both ends).
func (p *NetPair) Cut(t testing.TB) {
	t.Helper()
	if out, err := ipCmd("-n", p.B.Name, "link", "set", p.devB, "down"); err != nil {
		t.Fatalf("harness: cut %s: %v: %s", p.devB, err, out)
	}
}

// Heal brings B's veth end back up.
func (p *NetPair) Heal(t testing.TB) {
	t.Helper()
	if out, err := ipCmd("-n", p.B.Name, "link", "set", p.devB, "up"); err != nil {
		t.Fatalf("harness: heal %s: %v: %s", p.devB, err, out)
	}
}

// Start runs the shoal binary with args inside the namespace (`ip netns
// exec` execs it, so the Proc is the shoal process itself).
func (ns *Netns) Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	return Start(t, "ip", nil, append([]string{"netns", "exec", ns.Name, Binary(t)}, args...)...)
}

// Shoal runs a shoal CLI command inside the namespace to completion.
func (ns *Netns) Shoal(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, Binary(t)}, args...)...)
	var o, e lockedBuffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return o.String(), e.String(), code
}

// HTTPClient returns a client whose connections are made inside the
// namespace (e.g. to a process's admin on the namespace's 127.0.0.1).
// Keep-alives are off so no connection outlives a request.
func (ns *Netns) HTTPClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       ns.DialContext,
	}}
}

// DialContext dials from inside the namespace. A socket belongs to the
// namespace of the thread that created it, so the dial runs on a locked OS
// thread that enters the namespace with setns(2) and returns to its own
// afterwards. The thread must not die instead: the harness starts
// processes with Pdeathsig, which fires when the forking thread exits, and
// this may be that thread. Only if the way back fails is the thread left
// locked (and discarded by the runtime).
func (ns *Netns) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		c, back, err := ns.dialLocked(ctx, network, addr)
		if back {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// dialLocked dials from ns on the current, locked thread; back reports
// whether the thread is in its original namespace again.
func (ns *Netns) dialLocked(ctx context.Context, network, addr string) (c net.Conn, back bool, err error) {
	if setnsTrap == 0 {
		return nil, true, fmt.Errorf("harness: setns: unknown syscall number on %s", runtime.GOARCH)
	}
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, true, err
	}
	defer self.Close()
	target, err := os.Open(filepath.Join("/var/run/netns", ns.Name))
	if err != nil {
		return nil, true, err
	}
	defer target.Close()
	if _, _, e := syscall.RawSyscall(setnsTrap, target.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
		return nil, true, fmt.Errorf("harness: setns %s: %w", ns.Name, e)
	}
	var d net.Dialer
	c, err = d.DialContext(ctx, network, addr)
	_, _, e := syscall.RawSyscall(setnsTrap, self.Fd(), syscall.CLONE_NEWNET, 0)
	return c, e == 0, err
}

// setnsTrap is setns(2)'s number: package syscall names it on some
// architectures only, and golang.org/x/sys is not a direct dependency.
var setnsTrap = map[string]uintptr{"amd64": 308, "arm64": 268, "riscv64": 268, "386": 346, "arm": 375}[runtime.GOARCH]

// sweepNetns deletes namespaces a previous test process of this harness
// left behind when it was killed before its cleanup ran (their pid no
// longer exists). Others' namespaces are never touched.
func sweepNetns() {
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), netnsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			ipCmd("netns", "del", e.Name())
		}
	}
}

func ipCmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	return string(out), err
}
