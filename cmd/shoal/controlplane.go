package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"strings"

	"github.com/shoal-mesh/shoal/controlplane"
)

func runControlPlane(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := controlplane.DefaultConfig()
	fs := flag.NewFlagSet("shoal controlplane", flag.ContinueOnError)
	etcdEndpoints := fs.String("etcd-endpoints", "", "comma-separated endpoints of an external etcd cluster (no embedded etcd)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "embedded etcd data directory")
	fs.StringVar(&cfg.EtcdListen, "etcd-listen", cfg.EtcdListen, "embedded etcd client address (peer port is this port + 1 unless --etcd-peer-listen)")
	fs.StringVar(&cfg.EtcdPeerListen, "etcd-peer-listen", "", "embedded etcd peer address")
	fs.StringVar(&cfg.XDSListen, "xds-listen", cfg.XDSListen, "xDS (ADS) gRPC address")
	fs.StringVar(&cfg.APIListen, "api-listen", cfg.APIListen, "management API gRPC address")
	fs.StringVar(&cfg.AdminListen, "admin-listen", cfg.AdminListen, "admin HTTP address (/metrics, /ready)")
	fs.StringVar(&cfg.GossipListen, "gossip-listen", cfg.GossipListen, "gossip (memberlist) address")
	gossipJoin := fs.String("gossip-join", "", "comma-separated gossip seeds")
	fs.StringVar(&cfg.ID, "id", "", "control plane id (default: host name and xDS port)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	cfg.EtcdEndpoints = splitList(*etcdEndpoints)
	cfg.GossipJoin = splitList(*gossipJoin)
	cfg.Logger = newLogger(stderr, *logLevel)
	controlplane.Version = version
	srv, err := controlplane.New(cfg)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
