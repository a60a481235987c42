package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSlimBuildLinksOnlyWhatASidecarNeeds guards the sidecar binary's
// memory (issue #7: < 20 MB with 1,000 endpoints): the slim build
// (-tags shoal_slim) must not link go-control-plane's generated Envoy types
// or what they drag in (the sidecar decodes xDS with the code generated from
// a trimmed copy of Envoy's protos, sidecar/internal/xdspb), cobra (its flags
// cost 1 MiB of RSS), etcd's clientv3, its gogo protos and zap (it
// registers through internal/etcdlite), prometheus/client_golang (it uses
// internal/metric), or the management API's types and YAML (CLI only).
func TestSlimBuildLinksOnlyWhatASidecarNeeds(t *testing.T) {
	// go test puts its own GOROOT/bin first in PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go tool to list the slim build's packages: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "-tags", "shoal_slim", "github.com/shoal-mesh/shoal/cmd/shoal").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	banned := regexp.MustCompile(`go-control-plane|cncf/xds|envoyproxy|protoc-gen-validate|` +
		`go\.etcd\.io/etcd/(client/v3|api|server)|go\.uber\.org/zap|prometheus/client_golang|` +
		`shoal/proto/shoal/v1|shoal/controlplane|yaml|spf13/cobra|spf13/pflag`)
	var bad []string
	for _, p := range strings.Fields(string(out)) {
		if banned.MatchString(p) {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		t.Errorf("the slim build links %d packages a sidecar should not, e.g. %v; `go list -deps -tags shoal_slim ./cmd/shoal` and find the importer", len(bad), bad[:min(5, len(bad))])
	}
}

// TestNoHandDecodedProtobuf: wire formats with a schema are read by
// generated code (issue 12); no hand-written file walks protobuf bytes.
func TestNoHandDecodedProtobuf(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".pb.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte("protowire."+"Consume")) { // split: this file is not a hit
			t.Errorf("%s decodes protobuf by hand (protowire Consume functions): generate the code instead (tools/protosubset)", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
