//go:build !shoal_slim

package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/controlplane"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
)

// The CLI against a control plane whose API authenticates: a plain call
// says what to give, the admin certificate mints tokens, $SHOAL_TOKEN is
// read, a viewer cannot write.
func TestCLIAgainstAnAuthenticatedAPI(t *testing.T) {
	cfg := controlplane.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.EtcdListen, cfg.EtcdPeerListen = etcdtest.FreeAddr(t), etcdtest.FreeAddr(t)
	cfg.XDSListen, cfg.APIListen, cfg.AdminListen, cfg.GossipListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.APIAuth = controlplane.APIAuthRequired
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := controlplane.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	api := srv.Addrs().API

	stdout, stderr, code := shoal("routes", "list", "--api", api)
	if code == 0 || !strings.Contains(stderr, "disagree on TLS") || !strings.Contains(stderr, "--token") {
		t.Fatalf("plain routes list: exit %d: %s%s; want a hint to give --token", code, stdout, stderr)
	}
	if _, stderr, code := shoal("routes", "list", "--api", api, "--cert", "x.pem", "--key", "y.pem"); code != 2 || !strings.Contains(stderr, "--ca-bundle") {
		t.Fatalf("--cert without --ca-bundle: exit %d: %s; want a usage error naming --ca-bundle", code, stderr)
	}
	admin := t.TempDir()
	if _, stderr, code := shoal("ca", "issue-admin", "--ca-dir", filepath.Join(cfg.DataDir, "ca"), "--out", admin); code != 0 {
		t.Fatalf("ca issue-admin: exit %d: %s", code, stderr)
	}
	var viewer string
	deadline := time.Now().Add(20 * time.Second)
	for code = -1; code != 0 && time.Now().Before(deadline); {
		viewer, stderr, code = shoal("tokens", "create", "--viewer", "--api", api,
			"--cert", filepath.Join(admin, "cert.pem"), "--key", filepath.Join(admin, "key.pem"), "--ca-bundle", filepath.Join(admin, "ca.pem"))
		if code != 0 {
			time.Sleep(50 * time.Millisecond) // poll interval of a loop with a deadline
		}
	}
	if code != 0 || !strings.Contains(stderr, "role viewer") {
		t.Fatalf("tokens create --viewer: exit %d: %s", code, stderr)
	}
	t.Setenv("SHOAL_TOKEN", strings.TrimSpace(viewer))
	if stdout, stderr, code := shoal("routes", "list", "--api", api); code != 0 {
		t.Fatalf("routes list with $SHOAL_TOKEN: exit %d: %s%s", code, stdout, stderr)
	}
	if _, stderr, code := shoal("routes", "delete", "nothing", "--api", api); code == 0 || !strings.Contains(stderr, "permission denied") {
		t.Fatalf("viewer routes delete: exit %d: %s; want permission denied", code, stderr)
	}
}
