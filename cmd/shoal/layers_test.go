package main

import (
	"os/exec"
	"strings"
	"testing"
)

// goList runs `go list` with args and returns the lines of its output.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	goTool, err := exec.LookPath("go") // go test puts its own GOROOT/bin first in PATH
	if err != nil {
		t.Fatalf("no go tool: %v", err)
	}
	out, err := exec.Command(goTool, append([]string{"list"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Fields(string(out))
}

// TestArrowsRunOneWay: internal/ is the bottom layer (issue 12): no package
// under it imports the control plane or the sidecar, directly or not; and
// the xDS translation imports nothing from the xDS serving side.
func TestArrowsRunOneWay(t *testing.T) {
	const mod = "github.com/shoal-mesh/shoal/"
	internal := goList(t, mod+"internal/...")
	if len(internal) < 5 {
		t.Fatalf("go list found %d packages under internal/", len(internal))
	}
	for _, pkg := range internal {
		for _, dep := range goList(t, "-deps", "-test", pkg) {
			if strings.HasPrefix(dep, mod+"controlplane") || strings.HasPrefix(dep, mod+"sidecar") {
				t.Errorf("%s depends on %s: internal/ must not import controlplane or sidecar", pkg, dep)
				break
			}
		}
	}
	for _, dep := range goList(t, "-deps", mod+"controlplane/xds") {
		if strings.HasPrefix(dep, mod+"controlplane/xdsserver") {
			t.Errorf("controlplane/xds depends on %s: translation must not import serving", dep)
		}
	}
}
