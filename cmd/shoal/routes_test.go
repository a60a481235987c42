//go:build !shoal_slim

package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/shoal-mesh/shoal/controlplane/api"
	"github.com/shoal-mesh/shoal/controlplane/routes"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

func TestMain(m *testing.M) {
	// The CLI reads defaults from the config file of shoal login: point it
	// at one that does not exist, so that the developer's own login does
	// not change what the tests run against.
	os.Setenv(configEnv, filepath.Join(os.TempDir(), "shoal-test-no-config", "config.yaml"))
	goleak.VerifyTestMain(m, etcdtest.LeakOptions()...)
}

// startAPI serves the management API on loopback over embedded etcd and
// returns its address.
func startAPI(t *testing.T) string {
	t.Helper()
	e := etcdtest.Start(t)
	quiet := slog.New(slog.DiscardHandler)
	srv, err := api.New(api.Config{Routes: routes.NewStore(e.Client(t), quiet), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	gs := api.NewGRPCServer(nil)
	srv.Register(gs)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	t.Cleanup(func() {
		srv.Close()
		gs.Stop()
		if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String()
}

// shoalRoutes runs `shoal routes args...` and returns stdout and the error.
func shoalRoutes(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(append([]string{"routes"}, args...), &stdout, &stderr); code != 0 {
		return stdout.String(), fmt.Errorf("exit %d: %s", code, stderr.String())
	}
	return stdout.String(), nil
}

func exampleFiles(t *testing.T) ([]string, []*shoalv1.Route) {
	t.Helper()
	files, err := filepath.Glob("../../examples/routes/*.yaml")
	if err != nil || len(files) < 7 {
		t.Fatalf("examples: %v, %v", files, err)
	}
	var all []*shoalv1.Route
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := routes.Parse(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		all = append(all, rs...)
	}
	sortRoutes(all)
	return files, all
}

func sortRoutes(rs []*shoalv1.Route) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].GetName() < rs[j].GetName() })
}

func parseOutput(t *testing.T, out string) []*shoalv1.Route {
	t.Helper()
	rs, err := routes.Parse([]byte(out))
	if err != nil {
		t.Fatalf("parse output: %v\n%s", err, out)
	}
	sortRoutes(rs)
	return rs
}

var ignoreVersion = protocmp.IgnoreFields(&shoalv1.Route{}, "version")

func TestRoutesApplyListRoundTripsExamples(t *testing.T) {
	addr := startAPI(t)
	files, want := exampleFiles(t)
	apply := []string{"apply", "--api", addr}
	for _, f := range files {
		apply = append(apply, "-f", f)
	}

	out, err := shoalRoutes(t, apply...)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if n := strings.Count(out, " created\n"); n != len(want) {
		t.Errorf("apply created %d routes, want %d:\n%s", n, len(want), out)
	}
	out, err = shoalRoutes(t, apply...)
	if err != nil || strings.Count(out, " unchanged\n") != len(want) {
		t.Errorf("second apply = %v, want every route unchanged:\n%s", err, out)
	}

	for _, format := range []string{"yaml", "json"} {
		out, err := shoalRoutes(t, "list", "--api", addr, "-o", format)
		if err != nil {
			t.Fatalf("list -o %s: %v", format, err)
		}
		if diff := cmp.Diff(want, parseOutput(t, out), protocmp.Transform(), ignoreVersion); diff != "" {
			t.Errorf("list -o %s (-want +got):\n%s", format, diff)
		}
	}
	out, err = shoalRoutes(t, "list", "--api", addr)
	if err != nil || !strings.HasPrefix(out, "NAME ") || !strings.Contains(out, "orders-canary ") || !strings.Contains(out, "orders{version=v2}") {
		t.Errorf("list = %v:\n%s", err, out)
	}
	out, err = shoalRoutes(t, "get", "web", "-o", "yaml", "--api", addr)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if diff := cmp.Diff(want[len(want)-2:len(want)-1], parseOutput(t, out), protocmp.Transform(), ignoreVersion); diff != "" {
		t.Errorf("get web (-want +got):\n%s", diff)
	}

	changed := filepath.Join(t.TempDir(), "web.json")
	os.WriteFile(changed, []byte(`{"name":"web","hosts":["web"],"rules":[{"destinations":[{"service":"web"}],"strategy":"random"}]}`), 0o600)
	if out, err := shoalRoutes(t, "apply", "--api", addr, "-f", changed); err != nil || out != "route/web updated\n" {
		t.Errorf("apply changed web = %q, %v", out, err)
	}
	if out, err := shoalRoutes(t, "delete", "web", "--api", addr); err != nil || out != "route/web deleted\n" {
		t.Errorf("delete = %q, %v", out, err)
	}
	if _, err := shoalRoutes(t, "get", "web", "--api", addr); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("get after delete = %v, want not found", err)
	}
}

func TestRoutesApplyBrokenFileFailsNamingTheField(t *testing.T) {
	addr := startAPI(t)
	dir := t.TempDir()
	good := "name: web\nhosts: [web]\nrules:\n- destinations: [{service: web}]\n"
	tests := []struct {
		name    string
		content string
		wantErr []string
	}{
		{"unknown field", "name: web\nhosts: [web]\nrules:\n- destinations: [{service: web, wieght: 2}]\n", []string{"broken.yaml", "rules[0].destinations[0].wieght: unknown field"}},
		{"zero weights", "name: web\nhosts: [web]\nrules:\n- destinations: [{service: web, subset: {v: a}, weight: 0}, {service: web, weight: 0}]\n", []string{"rules[0].destinations: all weights are zero"}},
		{"negative weight in the second document", good + "---\nname: api\nhosts: [api]\nrules:\n- destinations: [{service: api, weight: -5}]\n", []string{`route "api"`, "rules[0].destinations[0].weight: -5 is outside"}},
		{"unknown strategy", "name: web\nhosts: [web]\nrules:\n- destinations: [{service: web}]\n  strategy: fastest\n", []string{"rules[0].strategy: unknown strategy"}},
		{"ring hash without key", "name: web\nhosts: [web]\nrules:\n- destinations: [{service: web}]\n  strategy: ring_hash\n", []string{"rules[0].hash_key: RING_HASH needs a hash key"}},
		{"two routes claiming one host and match", good + "---\nname: web2\nhosts: [web]\nrules:\n- destinations: [{service: web}]\n", []string{`route "web2"`, "rules[0].match: host \"web\""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, "broken.yaml")
			if err := os.WriteFile(file, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := run([]string{"routes", "apply", "--api", addr, "-f", file}, &stdout, &stderr); code == 0 {
				t.Fatalf("exit code 0, want non-zero; stdout:\n%s", stdout.String())
			}
			msg := stderr.String()
			if strings.Count(msg, "\n") != 1 {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(msg, w) {
					t.Errorf("stderr %q does not contain %q", msg, w)
				}
			}
		})
	}
	out, err := shoalRoutes(t, "list", "--api", addr, "-o", "json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("after broken applies, list = %q, %v; want nothing written", out, err)
	}
}

func TestRoutesUnreachableAPI(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	_, err = shoalRoutes(t, "list", "--api", addr, "--timeout", "5s")
	if err == nil || !strings.Contains(err.Error(), "cannot reach the management API at "+addr) {
		t.Errorf("list = %v, want a cannot-reach error", err)
	}
}
