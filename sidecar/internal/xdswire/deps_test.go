package xdswire_test

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestSlimBuildLinksNoEnvoyTypes guards the point of this package: the
// slim sidecar build (-tags shoal_slim) must not link go-control-plane's
// generated Envoy types or what they drag in (cncf/xds, protoc-gen-validate).
func TestSlimBuildLinksNoEnvoyTypes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-tags", "shoal_slim", "github.com/shoal-mesh/shoal/cmd/shoal").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	banned := regexp.MustCompile(`go-control-plane|cncf/xds|envoyproxy|protoc-gen-validate`)
	var bad []string
	for _, p := range strings.Fields(string(out)) {
		if banned.MatchString(p) {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		t.Errorf("the slim build links %d Envoy packages, e.g. %v; `go list -deps -tags shoal_slim ./cmd/shoal` and find the importer", len(bad), bad[:min(5, len(bad))])
	}
}
