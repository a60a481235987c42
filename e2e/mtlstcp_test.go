package e2e

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// startTCPEcho serves a line echo on loopback until cleanup: each line
// comes back prefixed with "echo: ".
func startTCPEcho(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, "echo: "+line); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().(*net.TCPAddr).Port
}

// tcpEcho sends line through addr and returns the answer ("" and the
// error when the connection fails or closes first).
func tcpEcho(addr, line string) (string, error) {
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(nc).ReadString('\n')
	return strings.TrimSuffix(got, "\n"), err
}

// Issue 13, item 3: TCP through two sidecars with mTLS between them. The
// callee's app speaks raw TCP (--app-protocol tcp) behind its mTLS inbound
// listener; the caller's --upstream port reaches it, bytes flow both ways,
// and a policy that names only another caller closes the connection.
func TestMTLSTCPBetweenSidecars(t *testing.T) {
	t.Parallel()
	cp := harness.StartControlPlane(t)
	dir := t.TempDir()
	echoListen := harness.FreeAddr(t)
	harness.StartSidecar(t, harness.SidecarOptions{
		CP: cp, Service: "echo", InstanceID: "echo-1", AppPort: startTCPEcho(t),
		Extra: []string{"--app-protocol", "tcp", "--health-path=", "--listen", echoListen,
			"--join-token-file", createToken(t, cp, dir, "echo")},
	})
	web := harness.StartSidecar(t, harness.SidecarOptions{
		CP: cp, Service: "web", InstanceID: "web-1", AppPort: harness.FreePort(t), NoRegister: true,
		Upstreams: []string{"echo"},
		Extra:     []string{"--join-token-file", createToken(t, cp, dir, "web")},
	})
	var last string
	harness.Eventually(t, harness.DefaultTimeout, "a line echoed through both sidecars over mTLS", func() bool {
		got, err := tcpEcho(web.Upstreams["echo"], "ping over mTLS")
		now := got
		if err != nil {
			now += " (" + err.Error() + ")"
		}
		if now != last {
			t.Logf("through web's --upstream echo: %q", now)
			last = now
		}
		return got == "echo: ping over mTLS"
	})

	t.Run("the inbound port refuses a plain TCP client", func(t *testing.T) {
		if got, err := tcpEcho(echoListen, "plain"); err == nil || strings.Contains(got, "echo") {
			t.Fatalf("a plain client got %q, %v through the mTLS port", got, err)
		}
	})

	t.Run("a caller the policy does not name gets its connection closed", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "echo.yaml")
		os.WriteFile(f, []byte("name: echo-callers\nservice: echo\nrules:\n  - callers: [\"ns/default/svc/billing\"]\n"), 0o644)
		if out, errOut, code := harness.Shoal(t, "policies", "apply", "--api", cp.API, "-f", f); code != 0 {
			t.Fatalf("shoal policies apply: exit %d: %s%s", code, out, errOut)
		}
		harness.Eventually(t, harness.DefaultTimeout, "web's TCP connection closed by the policy", func() bool {
			got, err := tcpEcho(web.Upstreams["echo"], "denied?")
			return err != nil && got == ""
		})
		if out, errOut, code := harness.Shoal(t, "policies", "delete", "echo-callers", "--api", cp.API); code != 0 {
			t.Fatalf("shoal policies delete: exit %d: %s%s", code, out, errOut)
		}
		harness.Eventually(t, harness.DefaultTimeout, "web reaches echo again once the policy is deleted", func() bool {
			got, _ := tcpEcho(web.Upstreams["echo"], "again")
			return got == "echo: again"
		})
	})
}
