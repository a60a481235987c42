package proxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// h2specModule is the conformance tester's version, as `make h2spec-deps`
// installs it.
const h2specModule = "github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible"

// h2specBinary finds h2spec on PATH or in $(go env GOPATH)/bin, installing
// it there with go install when missing. When that fails (no network and no
// module cache) the test fails under SHOAL_TEST_STRICT=1 (`make test`, CI)
// and skips, saying why, otherwise.
func h2specBinary(t *testing.T) string {
	t.Helper()
	unavailable := func(why string) {
		if os.Getenv("SHOAL_TEST_STRICT") == "1" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		unavailable(fmt.Sprintf("h2spec not found and go env GOPATH failed: %v", err))
	}
	bin := filepath.Join(string(regexp.MustCompile(`\s+$`).ReplaceAll(gopath, nil)), "bin")
	p := filepath.Join(bin, "h2spec")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	cmd := exec.Command("go", "install", h2specModule)
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		unavailable(fmt.Sprintf("h2spec is not installed and go install %s failed: %v\n%s", h2specModule, err, out))
	}
	return p
}

// Every h2spec case (RFC 7540/9113 and RFC 7541) passes against an h2c
// listener of each kind: outbound (routed by :authority), a fixed
// --upstream port to an h2c cluster, and the gateway.
func TestH2Spec(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: h2spec runs about 150 cases per listener (make test and CI run it)")
	}
	bin := h2specBinary(t)
	be := startH2CBackend(t, "up", nil)
	cc := route.ClusterConfig{Name: "up", Protocol: route.HTTP2, Endpoints: endpoints(be)}
	for _, mode := range []struct {
		name string
		mode Mode
	}{
		{"outbound", Mode{Kind: Outbound}},
		{"upstream port", Mode{Kind: Fixed, Cluster: "up"}},
		{"gateway", Mode{Kind: Gateway}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			p, addr := startProxy(t, Config{}, mode.mode)
			p.SetTable(simpleTable(t, p, cc, route.Route{}))
			host, port, _ := net.SplitHostPort(addr)
			ctx, cancel := context.WithTimeout(t.Context(), 4*defaultTestTimeout)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-o", "5").CombinedOutput()
			summary := regexp.MustCompile(`\d+ tests, \d+ passed, \d+ skipped, \d+ failed`).Find(out)
			if err != nil || summary == nil {
				t.Fatalf("h2spec: %v\n%s", err, out)
			}
			t.Logf("h2spec: %s", summary)
		})
	}
}
