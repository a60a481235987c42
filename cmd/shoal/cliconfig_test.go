//go:build !shoal_slim

package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/controlplane"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
)

// startControlPlane runs a control plane on loopback ports; mutate
// adjusts its config.
func startControlPlane(t *testing.T, mutate func(*controlplane.Config)) (*controlplane.Server, controlplane.Config) {
	t.Helper()
	cfg := controlplane.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.EtcdListen, cfg.EtcdPeerListen = etcdtest.FreeAddr(t), etcdtest.FreeAddr(t)
	cfg.XDSListen, cfg.APIListen, cfg.AdminListen, cfg.GossipListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := controlplane.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return srv, cfg
}

// until runs shoal args until it exits 0 (the control plane's first read
// of etcd), for at most 20 s.
func until(t *testing.T, args ...string) (string, string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		stdout, stderr, code := shoal(args...)
		if code == 0 {
			return stdout, stderr
		}
		if time.Now().After(deadline) {
			t.Fatalf("shoal %v: exit %d: %s%s", args, code, stdout, stderr)
		}
		time.Sleep(50 * time.Millisecond) // poll interval of a loop with a deadline
	}
}

// shoal login keeps the API address and credentials in $SHOAL_CONFIG
// (0600); every API command then needs no flag; flags override it.
func TestLoginThenNoFlags(t *testing.T) {
	srv, cfg := startControlPlane(t, func(c *controlplane.Config) { c.APIAuth = controlplane.APIAuthRequired })
	api := srv.Addrs().API
	conf := filepath.Join(t.TempDir(), "shoal", "config.yaml")
	t.Setenv(configEnv, conf)

	admin := t.TempDir()
	if _, stderr, code := shoal("ca", "issue-admin", "--ca-dir", filepath.Join(cfg.DataDir, "ca"), "--out", admin); code != 0 {
		t.Fatalf("ca issue-admin: exit %d: %s", code, stderr)
	}
	// Relative paths are kept absolute, so the file works from anywhere.
	t.Chdir(admin)
	stdout, _ := until(t, "login", "--api", api, "--cert", "cert.pem", "--key", "key.pem", "--ca-bundle", "ca.pem")
	if !strings.Contains(stdout, "logged in to "+api) || !strings.Contains(stdout, conf) {
		t.Errorf("login said %q", stdout)
	}
	fi, err := os.Stat(conf)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file %s: %v, mode %v; want 0600", conf, err, fi.Mode())
	}
	b, _ := os.ReadFile(conf)
	if !strings.Contains(string(b), filepath.Join(admin, "cert.pem")) {
		t.Errorf("config file lacks the absolute --cert path:\n%s", b)
	}
	t.Chdir(t.TempDir())

	// No flags: the admin certificate from the file.
	viewer, stderr, code := shoal("tokens", "create", "--viewer")
	if code != 0 {
		t.Fatalf("tokens create --viewer with no flags: exit %d: %s", code, stderr)
	}
	for _, args := range [][]string{{"routes", "list"}, {"services"}, {"status"}, {"policies", "list"}, {"check"}} {
		if stdout, stderr, code := shoal(args...); code != 0 {
			t.Errorf("shoal %v with the config file: exit %d: %s%s", args, code, stdout, stderr)
		}
	}

	// A login with a bad token fails and leaves the file as it was.
	if _, stderr, code := shoal("login", "--api", api, "--token", "shoaljt1.bogus."+strings.Repeat("0", 64)); code == 0 {
		t.Fatalf("login with a bogus token: exit 0: %s", stderr)
	}
	if after, _ := os.ReadFile(conf); string(after) != string(b) {
		t.Errorf("a failed login changed the config file")
	}

	// The viewer logs in with the token alone; it reads and cannot write.
	if _, stderr, code := shoal("login", "--api", api, "--token", strings.TrimSpace(viewer)); code != 0 {
		t.Fatalf("viewer login: exit %d: %s", code, stderr)
	}
	if _, stderr, code := shoal("routes", "list"); code != 0 {
		t.Errorf("viewer routes list: exit %d: %s", code, stderr)
	}
	if _, stderr, code := shoal("routes", "delete", "nothing"); code == 0 || !strings.Contains(stderr, "permission denied") {
		t.Errorf("viewer routes delete: exit %d: %s; want permission denied", code, stderr)
	}
	// Flags override the file: another --api is not given its credentials.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	if _, stderr, code := shoal("routes", "list", "--api", dead, "--timeout", "2s"); code == 0 || !strings.Contains(stderr, dead) {
		t.Errorf("routes list --api %s: exit %d: %s; want it to go there", dead, code, stderr)
	}
	if _, stderr, code := shoal("login", "--token", "x"); code != 2 || !strings.Contains(stderr, "--api") {
		t.Errorf("login without --api: exit %d: %s; want a usage error naming --api", code, stderr)
	}
}

// shoal check lists the doors a control plane left open under --insecure.
func TestCheckReportsOpenDoors(t *testing.T) {
	srv, _ := startControlPlane(t, func(c *controlplane.Config) {
		c.GossipListen, c.GossipAuth, c.Insecure = "0.0.0.0:0", controlplane.APIAuthOff, true
	})
	api := srv.Addrs().API
	var stdout string
	deadline := time.Now().Add(20 * time.Second)
	for {
		var code int
		stdout, _, code = shoal("check", "--api", api)
		if strings.Contains(stdout, "✔ control plane ready") || time.Now().After(deadline) {
			if code == 0 {
				t.Fatalf("check passed with plain gossip beyond loopback:\n%s", stdout)
			}
			break
		}
		time.Sleep(50 * time.Millisecond) // poll interval of a loop with a deadline
	}
	if !strings.Contains(stdout, "✖ no open doors") || !strings.Contains(stdout, "--gossip-listen 0.0.0.0:0") {
		t.Errorf("check does not report the plain gossip listener:\n%s", stdout)
	}
}

func TestCheckDoorsPlainAPIBeyondLoopback(t *testing.T) {
	t.Setenv("SHOAL_TOKEN", "")
	for _, tc := range []struct {
		name string
		f    apiFlags
		want bool
	}{
		{"plain beyond loopback", apiFlags{addr: "10.0.0.5:18001"}, false},
		{"plain on loopback", apiFlags{addr: "127.0.0.1:18001"}, true},
		{"TLS with a token beyond loopback", apiFlags{addr: "10.0.0.5:18001", token: "t"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := checkDoors(tc.f, nil)
			if *r.ok != tc.want {
				t.Errorf("no open doors = %v (%v), want %v", *r.ok, r.lines, tc.want)
			}
		})
	}
}
