package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// startLineServer serves TCP on loopback: it writes back each line that
// starts with "echo" and swallows the others. When a connection's read
// ends it sends the error (nil for EOF) on the returned channel and closes
// the connection.
func startLineServer(t *testing.T) (string, <-chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err == io.EOF {
						err = nil
					}
					if err != nil || line == "" {
						ended <- err
						return
					}
					if strings.HasPrefix(line, "echo") {
						io.WriteString(c, line)
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return l.Addr().String(), ended
}

// waitEnded waits for the line server to see a connection end.
func waitEnded(t *testing.T, ended <-chan error) {
	t.Helper()
	select {
	case err := <-ended:
		if err != nil {
			t.Errorf("upstream read ended with %v, want EOF", err)
		}
	case <-time.After(defaultTestTimeout):
		t.Fatal("the upstream connection was not closed")
	}
}

// startTCPProxy serves a Fixed listener proxying TCP to upAddr with the
// given idle timeout and returns the proxy and the listener's address.
func startTCPProxy(t *testing.T, upAddr string, idle time.Duration) (*Proxy, string) {
	t.Helper()
	p, err := New(Config{TCPIdleTimeout: idle})
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := route.New(route.Config{Loads: p.Loads(), Clusters: []route.ClusterConfig{{Name: "db", Protocol: route.TCP,
		Endpoints: []route.Endpoint{{Address: upAddr, Healthy: true}}}}})
	if err != nil {
		t.Fatal(err)
	}
	p.SetTable(tbl)
	return p, serve(t, p, Mode{Kind: Fixed, Cluster: "db"})
}

func TestTCPIdleTimeout(t *testing.T) {
	// Long enough that a stalled test process (a loaded machine) does not
	// leave a gap of a whole timeout between two writes of the traffic.
	const idle = time.Second
	upAddr, ended := startLineServer(t)
	p, addr := startTCPProxy(t, upAddr, idle)

	// traffic writes a line every idle/20 for one and a half idle
	// timeouts; with echo it expects each line back at once.
	traffic := func(t *testing.T, c net.Conn, br *bufio.Reader, echo bool) {
		t.Helper()
		tick := time.NewTicker(idle / 20) // stimulus: the traffic's pace
		defer tick.Stop()
		for i, end := 0, time.Now().Add(idle*3/2); time.Now().Before(end); i++ {
			<-tick.C
			line := fmt.Sprintf("sink %d\n", i)
			if echo {
				line = fmt.Sprintf("echo %d\n", i)
			}
			if _, err := io.WriteString(c, line); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			if !echo {
				continue
			}
			if got, err := br.ReadString('\n'); err != nil || got != line {
				t.Fatalf("echo %d = %q, %v", i, got, err)
			}
		}
		if _, err := io.WriteString(c, "echo still open\n"); err != nil {
			t.Fatal(err)
		}
		if got, err := br.ReadString('\n'); err != nil || got != "echo still open\n" {
			t.Fatalf("after the traffic: %q, %v; want the connection open", got, err)
		}
	}
	dial := func(t *testing.T) (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(defaultTestTimeout))
		return c, bufio.NewReader(c)
	}

	t.Run("bytes moving both ways for longer than the timeout are not cut", func(t *testing.T) {
		c, br := dial(t)
		traffic(t, c, br, true)
		c.Close()
		waitEnded(t, ended)
	})
	t.Run("bytes moving one way only are not cut", func(t *testing.T) {
		c, br := dial(t)
		traffic(t, c, br, false)
		c.Close()
		waitEnded(t, ended)
	})
	t.Run("silence for the timeout closes both sides", func(t *testing.T) {
		c, br := dial(t)
		sent := time.Now() // the last byte moves after this
		io.WriteString(c, "echo hi\n")
		if got, err := br.ReadString('\n'); err != nil || got != "echo hi\n" {
			t.Fatalf("echo = %q, %v", got, err)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("client read = %v, want EOF", err)
		}
		if d := time.Since(sent); d < idle {
			t.Errorf("closed %v after the last byte, before the idle timeout %v", d, idle)
		}
		waitEnded(t, ended)
		eventually(t, "the idle timeout to be counted", func() bool { return p.metrics.tcpIdleTimeouts.Value() == 1 })
	})
}

// With the idle timeout disabled (negative) bytes are copied without
// tracking (spliced in the kernel on Linux).
func TestTCPWithoutIdleTimeout(t *testing.T) {
	upAddr, ended := startLineServer(t)
	_, addr := startTCPProxy(t, upAddr, -1)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(defaultTestTimeout))
	io.WriteString(c, "echo hi\n")
	if got, err := bufio.NewReader(c).ReadString('\n'); err != nil || got != "echo hi\n" {
		t.Fatalf("echo = %q, %v", got, err)
	}
	c.Close()
	waitEnded(t, ended)
}
