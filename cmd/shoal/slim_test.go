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

// slimTags are the build tags of the slim sidecar as it ships (Dockerfile,
// bench/*.sh, README). grpcnotrace leaves out grpc-go's x/net/trace
// (grpc.EnableTracing, which shoal never sets): its /debug/requests page
// links html/template's executor, whose reflection makes the linker keep
// every exported method: +2.4 MB of mapped binary and about +1.8 MiB of RSS
// with 1,000 endpoints (bench/rss.sh: 19.1-19.5 MiB without it, 20.7-21.2
// with).
const slimTags = "shoal_slim,grpcnotrace"

// Every command that builds the slim sidecar uses slimTags: a build with
// shoal_slim alone works but costs the RSS above.
func TestSlimBuildCommandsUseSlimTags(t *testing.T) {
	root := filepath.Join("..", "..")
	files := []string{"Dockerfile", "README.md", "bench/README.md", "bench/rss.sh", "bench/run.sh"}
	tagged := regexp.MustCompile(`-tags[ =]"?([A-Za-z0-9_,]*shoal_slim[A-Za-z0-9_,]*)`)
	found := 0
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range tagged.FindAllSubmatch(b, -1) {
			found++
			if string(m[1]) != slimTags {
				t.Errorf("%s builds the slim sidecar with -tags %s, want -tags %s", f, m[1], slimTags)
			}
		}
	}
	if found < len(files) {
		t.Errorf("found %d slim build commands in %v, want one in each at least", found, files)
	}
}

// TestSlimBuildLinksOnlyWhatASidecarNeeds guards the sidecar binary's
// memory (issue #7: < 20 MB with 1,000 endpoints): the slim build
// (-tags shoal_slim) must not link go-control-plane's generated Envoy types
// or what they drag in (the sidecar decodes xDS with the code generated from
// a trimmed copy of Envoy's protos, sidecar/internal/xdspb), cobra (its flags
// cost 1 MiB of RSS), etcd's clientv3, its gogo protos and zap (it
// registers through internal/etcdlite), prometheus/client_golang (it uses
// internal/metric), the management API's types and YAML (CLI only), or
// golang.org/x/net/trace (left out by grpcnotrace, see slimTags).
func TestSlimBuildLinksOnlyWhatASidecarNeeds(t *testing.T) {
	// go test puts its own GOROOT/bin first in PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go tool to list the slim build's packages: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "-tags", slimTags, "github.com/shoal-mesh/shoal/cmd/shoal").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	banned := regexp.MustCompile(`go-control-plane|cncf/xds|envoyproxy|protoc-gen-validate|` +
		`go\.etcd\.io/etcd/(client/v3|api|server)|go\.uber\.org/zap|prometheus/client_golang|` +
		`shoal/proto/shoal/v1|shoal/controlplane|yaml|spf13/cobra|spf13/pflag|golang\.org/x/net/trace`)
	var bad []string
	for _, p := range strings.Fields(string(out)) {
		if banned.MatchString(p) {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		t.Errorf("the slim build links %d packages a sidecar should not, e.g. %v; `go list -deps -tags %s ./cmd/shoal` and find the importer", len(bad), bad[:min(5, len(bad))], slimTags)
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
