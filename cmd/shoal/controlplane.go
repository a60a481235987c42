//go:build !shoal_slim

package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-mesh/shoal/controlplane"
	"github.com/shoal-mesh/shoal/registry/gossip"
)

func newControlPlaneCmd() *cobra.Command {
	cfg := controlplane.DefaultConfig()
	var etcdEndpoints, gossipJoin, logLevel, etcdPasswordFile, tlsNames string
	var gossipKey gossipKeyFlags
	memoryLimit := memoryLimitFlag{v: "0"}
	cmd := &cobra.Command{
		Use:   "controlplane",
		Short: "run the control plane (embedded etcd by default)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkControlPlaneAddrs(&cfg, etcdEndpoints, gossipJoin); err != nil {
				return err
			}
			cfg.EtcdEndpoints = splitList(etcdEndpoints)
			cfg.TLSNames = splitList(tlsNames)
			for _, n := range cfg.TLSNames {
				if net.ParseIP(n) == nil && !isDNSName(n) {
					return usageErrorf("--tls-san %q: want a DNS name or an IP address", n)
				}
			}
			if err := resolveEtcdAuth(&cfg, etcdPasswordFile); err != nil {
				return err
			}
			cfg.GossipJoin = splitList(gossipJoin)
			b64key, err := gossipKey.resolve()
			if err != nil {
				return err
			}
			if cfg.GossipKeys, err = gossip.ParseKeys(b64key); err != nil {
				return fmt.Errorf("--gossip-key: %w", err)
			}
			if cfg.Logger, err = newLogger(cmd.ErrOrStderr(), logLevel); err != nil {
				return err
			}
			memoryLimit.apply()
			controlplane.Version = currentBuild().Version
			srv, err := controlplane.New(cfg)
			if err != nil {
				return err
			}
			return srv.Run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&etcdEndpoints, "etcd-endpoints", "", "comma-separated endpoints of an external etcd cluster (no embedded etcd)")
	fs.StringVar(&cfg.EtcdCAFile, "etcd-cacert", "", "with https:// --etcd-endpoints: PEM file of the CA that signed etcd's serving certificate (default: the system roots)")
	fs.StringVar(&cfg.EtcdCertFile, "etcd-cert", "", "with https:// --etcd-endpoints: client certificate (PEM) for etcd's --client-cert-auth; re-read when the file changes")
	fs.StringVar(&cfg.EtcdKeyFile, "etcd-key", "", "the private key (PEM) of --etcd-cert")
	fs.StringVar(&cfg.EtcdUsername, "etcd-username", "", "etcd user (etcd's own authentication) for --etcd-endpoints; the password comes from --etcd-password-file or $"+etcdPasswordEnv)
	fs.StringVar(&etcdPasswordFile, "etcd-password-file", "", "file holding the password of --etcd-username (e.g. a mounted Kubernetes Secret)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "embedded etcd data directory")
	fs.StringVar(&cfg.EtcdListen, "etcd-listen", cfg.EtcdListen, "embedded etcd client address (peer port is this port + 1 unless --etcd-peer-listen)")
	fs.StringVar(&cfg.EtcdPeerListen, "etcd-peer-listen", "", "embedded etcd peer address")
	fs.StringVar(&cfg.XDSListen, "xds-listen", cfg.XDSListen, "xDS (ADS) gRPC address")
	fs.StringVar(&cfg.APIListen, "api-listen", cfg.APIListen, "management API gRPC address")
	fs.StringVar(&cfg.AdminListen, "admin-listen", cfg.AdminListen, "admin HTTP address (/metrics, /ready)")
	fs.StringVar(&cfg.GossipListen, "gossip-listen", cfg.GossipListen, "gossip (memberlist) address")
	fs.StringVar(&gossipJoin, "gossip-join", "", "comma-separated gossip seeds")
	goFlags := flag.NewFlagSet("shoal controlplane", flag.ContinueOnError)
	gossipKey.register(goFlags)
	fs.AddGoFlagSet(goFlags)
	fs.StringVar(&cfg.GossipLabel, "gossip-label", "shoal", "gossip cluster label; meshes with different labels never merge")
	fs.StringVar(&cfg.ID, "id", "", "control plane id (default: host name and xDS port)")
	fs.StringVar(&cfg.CADir, "ca-dir", "", "`DIR` with the mesh CA from shoal ca init (ca.crt, ca.key, root.crt); default: a development CA created under --data-dir/ca")
	fs.StringVar(&cfg.TrustDomain, "trust-domain", "shoal.local", "SPIFFE trust domain of workload identities")
	fs.StringVar(&tlsNames, "tls-san", "", "comma-separated DNS names or IPs the xDS and API serving certificate also names, for clients that verify a host name (gRPC bootstraps naming a Service, e.g. shoal-xds.shoal-system.svc); shoal's own clients verify the control plane's SPIFFE ID")
	fs.DurationVar(&cfg.SVIDTTL, "svid-ttl", 24*time.Hour, "lifetime of workload certificates (renewed by their holders at half of it)")
	fs.StringVar(&cfg.APIAuth, "api-auth", controlplane.APIAuthAuto, "management API authentication: auto (on when --api-listen is beyond loopback), required (also on loopback) or off (beyond loopback only with --insecure)")
	fs.StringVar(&cfg.XDSAuth, "xds-auth", controlplane.APIAuthAuto, "xDS port authentication: auto (on when --xds-listen is beyond loopback), required (also on loopback) or off (beyond loopback only with --insecure); when on, proxies need an SVID (--join-token-file) and may only subscribe as their own service")
	fs.StringVar(&cfg.GossipAuth, "gossip-auth", controlplane.APIAuthAuto, "gossip authentication: auto (on when --gossip-listen is beyond loopback), required (also on loopback) or off (beyond loopback only with --gossip-key or --insecure); when on, gossip is encrypted with a keyring kept in etcd (or --gossip-key-file), handed to members with an SVID, and health claims count only for the member's own service")
	fs.StringVar(&cfg.EtcdTLS, "etcd-tls", controlplane.APIAuthAuto, "embedded etcd TLS with client certificates of the mesh CA: auto (on when --etcd-listen or --etcd-peer-listen is beyond loopback), required (also on loopback) or off (beyond loopback only with --insecure)")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "allow listeners beyond loopback to serve plain text without authentication (trusted networks only)")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "serve net/http/pprof's /debug/pprof/ on the admin listener")
	fs.Var(&memoryLimit, "memory-limit", "soft limit of the Go runtime's memory (debug.SetMemoryLimit), e.g. 512MiB: bounds the peak when many xDS clients sync at once (README, Performance); 0, the default, sets none (GOMEMLIMIT in the environment applies)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// checkControlPlaneAddrs checks every address flag of `shoal controlplane`.
func checkControlPlaneAddrs(cfg *controlplane.Config, etcdEndpoints, gossipJoin string) error {
	if etcdEndpoints != "" {
		if _, err := checkURLList("--etcd-endpoints", etcdEndpoints, "http", "https"); err != nil {
			return err
		}
	}
	if gossipJoin != "" {
		if _, err := checkHostPorts("--gossip-join", gossipJoin); err != nil {
			return err
		}
	}
	for _, l := range []struct {
		flag, v  string
		optional bool
	}{
		{"--etcd-listen", cfg.EtcdListen, etcdEndpoints != ""},
		{"--etcd-peer-listen", cfg.EtcdPeerListen, true},
		{"--xds-listen", cfg.XDSListen, false},
		{"--api-listen", cfg.APIListen, false},
		{"--admin-listen", cfg.AdminListen, false},
		{"--gossip-listen", cfg.GossipListen, true},
	} {
		if err := checkListen(l.flag, l.v, l.optional); err != nil {
			return err
		}
	}
	return nil
}

// etcdPasswordEnv holds the password of --etcd-username when
// --etcd-password-file is not given (a password never goes in argv).
const etcdPasswordEnv = "SHOAL_ETCD_PASSWORD"

// resolveEtcdAuth checks the external etcd's TLS and user flags and reads
// the password.
func resolveEtcdAuth(cfg *controlplane.Config, passwordFile string) error {
	external := len(cfg.EtcdEndpoints) > 0
	for _, f := range []struct{ flag, v string }{
		{"--etcd-cacert", cfg.EtcdCAFile}, {"--etcd-cert", cfg.EtcdCertFile}, {"--etcd-key", cfg.EtcdKeyFile},
		{"--etcd-username", cfg.EtcdUsername}, {"--etcd-password-file", passwordFile},
	} {
		if f.v != "" && !external {
			return usageErrorf("%s: only with --etcd-endpoints (the embedded etcd's TLS is --etcd-tls)", f.flag)
		}
	}
	if (cfg.EtcdCertFile == "") != (cfg.EtcdKeyFile == "") {
		return usageErrorf("--etcd-cert and --etcd-key: give both or neither")
	}
	if cfg.EtcdUsername == "" {
		if passwordFile != "" {
			return usageErrorf("--etcd-password-file: needs --etcd-username")
		}
		return nil
	}
	if passwordFile != "" {
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return fmt.Errorf("--etcd-password-file: %w", err)
		}
		cfg.EtcdPassword = strings.TrimRight(string(b), "\r\n")
	} else {
		cfg.EtcdPassword = os.Getenv(etcdPasswordEnv)
	}
	if cfg.EtcdPassword == "" {
		return usageErrorf("--etcd-username %s: no password (--etcd-password-file or $%s)", cfg.EtcdUsername, etcdPasswordEnv)
	}
	return nil
}
