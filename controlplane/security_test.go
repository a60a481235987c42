package controlplane_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-mesh/shoal/controlplane"
)

// A control plane asked to serve plain text beyond loopback refuses to
// start, naming the flag and --insecure; nothing is started (no data dir).
func TestPlainBeyondLoopbackRefused(t *testing.T) {
	for _, tc := range []struct {
		name, flag string
		set        func(*controlplane.Config)
	}{
		{"xds-off", "--xds-listen", func(c *controlplane.Config) { c.XDSListen = "0.0.0.0:0"; c.XDSAuth = controlplane.APIAuthOff }},
		{"admin", "--admin-listen", func(c *controlplane.Config) { c.AdminListen = ":0" }},
		{"etcd", "--etcd-listen", func(c *controlplane.Config) { c.EtcdListen = "0.0.0.0:2379" }},
		{"api-off", "--api-listen", func(c *controlplane.Config) { c.APIListen = "0.0.0.0:0"; c.APIAuth = controlplane.APIAuthOff }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := controlplane.DefaultConfig()
			cfg.DataDir = filepath.Join(t.TempDir(), "data")
			cfg.XDSListen, cfg.APIListen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
			cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			tc.set(&cfg)
			srv, err := controlplane.New(cfg)
			if err == nil {
				srv.Run(canceled())
				t.Fatalf("New started with %s beyond loopback in plain text: %v", tc.flag, srv.Addrs())
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.flag) || !strings.Contains(msg, "--insecure") || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line naming %s and --insecure", msg, tc.flag)
			}
		})
	}
}

// With --insecure the same configuration starts (a trusted network).
func TestInsecureAllowsPlainBeyondLoopback(t *testing.T) {
	srv, _ := start(t, func(c *controlplane.Config) {
		c.AdminListen = "0.0.0.0:0"
		c.Insecure = true
	})
	waitReady(t, "127.0.0.1:"+srv.Addrs().Admin[strings.LastIndex(srv.Addrs().Admin, ":")+1:])
}

func TestAPIAuthModeChecked(t *testing.T) {
	cfg := controlplane.DefaultConfig()
	cfg.APIAuth = "sometimes"
	if _, err := controlplane.New(cfg); err == nil || !strings.Contains(err.Error(), "--api-auth") {
		t.Fatalf("New with --api-auth sometimes: %v, want an error naming --api-auth", err)
	}
	cfg.APIAuth, cfg.XDSAuth = "", "maybe"
	if _, err := controlplane.New(cfg); err == nil || !strings.Contains(err.Error(), "--xds-auth") {
		t.Fatalf("New with --xds-auth maybe: %v, want an error naming --xds-auth", err)
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
