package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// acceptChildEnv makes the test binary run acceptChild instead of the
// tests: a gateway under a small file descriptor limit, in a process of
// its own so that the test's own sockets do not count against it.
const acceptChildEnv = "SHOAL_PROXY_TEST_ACCEPT_CHILD"

// acceptChildFDs is the child's RLIMIT_NOFILE (as prlimit --nofile).
const acceptChildFDs = 64

// acceptChild serves a gateway to the backend named by the environment
// with RLIMIT_NOFILE lowered, prints its address, and exits 0 on SIGTERM
// once Serve returned ErrClosed, or 1 if Serve returned anything else
// before.
func acceptChild() int {
	lim := syscall.Rlimit{Cur: acceptChildFDs, Max: acceptChildFDs}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	p, err := New(Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	tbl, err := route.New(route.Config{
		VirtualHosts: []route.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []route.Route{{Clusters: one("a")}}}},
		Clusters:     []route.ClusterConfig{{Name: "a", Endpoints: []route.Endpoint{{Address: os.Getenv(acceptChildEnv), Healthy: true}}}},
		Loads:        p.Loads(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	p.SetTable(tbl)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println(l.Addr())
	served := make(chan error, 1)
	go func() { served <- p.Serve(l, Mode{Kind: Gateway}) }()
	select {
	case err := <-served:
		fmt.Fprintln(os.Stderr, "Serve returned:", err)
		return 1
	case <-ctx.Done():
	}
	p.Close()
	if err := <-served; err != ErrClosed {
		fmt.Fprintln(os.Stderr, "Serve after Close:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "accept errors: %v\n", p.metrics.acceptErrors.Value())
	return 0
}

// syncBuffer is a strings.Builder for a child's stderr, read while the
// child writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A gateway whose descriptors run out (more idle connections than
// RLIMIT_NOFILE allows, as under prlimit --nofile) keeps running, logs
// and counts the failed accepts, and serves again once the connections
// close: accept errors are retried, never the end of the process.
func TestAcceptErrorsAreRetried(t *testing.T) {
	be := startBackend(t, "a", nil)
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), acceptChildEnv+"="+be.addr())
	var stderr syncBuffer
	child.Stderr = &stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	t.Cleanup(func() {
		child.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("gateway process: %v\n%s", err, stderr.String())
			}
		case <-time.After(defaultTestTimeout):
			child.Process.Kill()
			t.Errorf("gateway process did not stop\n%s", stderr.String())
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("gateway address: %v\n%s", err, stderr.String())
	}
	addr := strings.TrimSpace(line)

	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range 2 * acceptChildFDs {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	eventually(t, "the gateway to log failed accepts", func() bool {
		return strings.Contains(stderr.String(), "accept failed; retrying")
	})
	select {
	case err := <-exited:
		t.Fatalf("the gateway exited with its descriptors exhausted: %v\n%s", err, stderr.String())
	default:
	}
	for _, c := range idle {
		c.Close()
	}
	idle = nil
	// The connections still queued are accepted (and end) as descriptors
	// free up; then a request is served again.
	c := client(t)
	eventually(t, "the gateway to serve again", func() bool {
		res, err := c.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		io.Copy(io.Discard, res.Body)
		return res.StatusCode == 200
	})
	if strings.Contains(stderr.String(), "Serve returned") {
		t.Errorf("Serve returned:\n%s", stderr.String())
	}
}
