//go:build !shoal_slim

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/shoal-mesh/shoal/controlplane"
	"github.com/shoal-mesh/shoal/registry/gossip"
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
	var gossipKey gossipKeyFlags
	gossipKey.register(fs)
	fs.StringVar(&cfg.GossipLabel, "gossip-label", "shoal", "gossip cluster label; meshes with different labels never merge")
	fs.StringVar(&cfg.ID, "id", "", "control plane id (default: host name and xDS port)")
	fs.StringVar(&cfg.CADir, "ca-dir", "", "directory with the mesh CA from `shoal ca init` (ca.crt, ca.key, root.crt); default: a development CA created under --data-dir/ca")
	fs.StringVar(&cfg.TrustDomain, "trust-domain", "shoal.local", "SPIFFE trust domain of workload identities")
	fs.DurationVar(&cfg.SVIDTTL, "svid-ttl", 24*time.Hour, "lifetime of workload certificates (renewed by their holders at half of it)")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "serve net/http/pprof's /debug/pprof/ on the admin listener")
	memoryLimit := memoryLimitFlag{v: "0"}
	fs.Var(&memoryLimit, "memory-limit", "soft limit of the Go runtime's memory (debug.SetMemoryLimit), e.g. 512MiB: bounds the peak when many xDS clients sync at once (README, Performance); 0, the default, sets none (GOMEMLIMIT in the environment applies)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	cfg.EtcdEndpoints = splitList(*etcdEndpoints)
	cfg.GossipJoin = splitList(*gossipJoin)
	b64key, err := gossipKey.resolve()
	if err != nil {
		return err
	}
	if cfg.GossipKeys, err = gossip.ParseKeys(b64key); err != nil {
		return fmt.Errorf("--gossip-key: %w", err)
	}
	memoryLimit.apply()
	cfg.Logger = newLogger(stderr, *logLevel)
	controlplane.Version = version
	srv, err := controlplane.New(cfg)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}
