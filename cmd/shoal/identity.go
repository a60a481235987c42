//go:build !shoal_slim

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/shoal-mesh/shoal/identity"
	"github.com/shoal-mesh/shoal/identity/grpcbootstrap"
	sidecaridentity "github.com/shoal-mesh/shoal/sidecar/identity"
)

// newIdentityCmd is `shoal identity fetch`: it keeps cert.pem, key.pem
// and ca.pem fresh in --out for a proxyless gRPC client or server
// (grpc-go's file_watcher certificate provider), renewing at half the
// lifetime until stopped (or once with --once).
func newIdentityCmd() *cobra.Command {
	id := groupCmd("identity", "keep a workload certificate in files for proxyless gRPC: fetch --join-token-file F --out DIR")
	var idf identityFlags
	var xds, out, logLevel string
	var once bool
	var boot bootstrapFlags
	fetch := &cobra.Command{
		Use:   "fetch --join-token-file F --out DIR",
		Short: "get an SVID for a join token and keep cert.pem, key.pem and ca.pem fresh in DIR",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("--out is required")
			}
			return identityFetch(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), fetchOptions{
				idf: idf, xds: xds, out: out, logLevel: logLevel, once: once, boot: boot,
			})
		},
	}
	goFlags := flag.NewFlagSet("shoal identity fetch", flag.ContinueOnError)
	idf.register(goFlags)
	fetch.Flags().AddGoFlagSet(goFlags)
	fetch.Flags().StringVar(&xds, "xds", "127.0.0.1:18000", "control plane xDS address (serves the IdentityService)")
	fetch.Flags().StringVar(&out, "out", "", "directory for cert.pem, key.pem (0600) and ca.pem (required)")
	fetch.Flags().BoolVar(&once, "once", false, "fetch (or keep a valid one) and exit instead of renewing")
	fetch.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fetch.Flags().StringVar(&boot.file, "grpc-bootstrap", "", "also write a gRPC xDS bootstrap to this file (for GRPC_XDS_BOOTSTRAP): xDS over mTLS with these files, node cluster = the SVID's service, certificate provider \""+grpcbootstrap.CertProviderInstance+"\" (file_watcher)")
	fetch.Flags().StringVar(&boot.nodeID, "node-id", "", "node.id in the --grpc-bootstrap (default: <service>-<hostname>)")
	fetch.Flags().StringVar(&boot.zone, "zone", "local", "node.locality.zone in the --grpc-bootstrap")
	id.AddCommand(fetch)
	return id
}

// bootstrapFlags are the --grpc-bootstrap flags of `shoal identity fetch`.
type bootstrapFlags struct {
	file, nodeID, zone string
}

type fetchOptions struct {
	idf                identityFlags
	xds, out, logLevel string
	once               bool
	boot               bootstrapFlags
}

func identityFetch(ctx context.Context, stdout, stderr io.Writer, o fetchOptions) error {
	if err := checkHostPort("--xds", o.xds); err != nil {
		return err
	}
	token, bundle, err := o.idf.resolve()
	if err != nil {
		return err
	}
	logger, err := newLogger(stderr, o.logLevel)
	if err != nil {
		return err
	}
	var started atomic.Bool
	c, err := sidecaridentity.New(sidecaridentity.Config{
		Server: o.xds, Token: token, CABundle: bundle, StateDir: o.out, Files: sidecaridentity.FetchFiles, Logger: logger,
		OnRotate: func(s *x509svid.SVID) {
			fmt.Fprintf(stdout, "%s serial %s expires %s\n", s.ID, s.Certificates[0].SerialNumber.Text(16), s.Certificates[0].NotAfter.Format(time.RFC3339))
			if o.boot.file == "" || !started.Load() {
				return
			}
			// A new --svid-ttl may call for another refresh interval.
			if err := writeGRPCBootstrap(o, s); err != nil {
				logger.Warn("could not update the gRPC bootstrap", "err", err)
			}
		},
	})
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	started.Store(true)
	if o.boot.file != "" {
		s, err := c.GetX509SVID()
		if err != nil {
			return err
		}
		if err := writeGRPCBootstrap(o, s); err != nil {
			return err
		}
	}
	if o.once {
		return nil
	}
	return c.Run(ctx)
}

// writeGRPCBootstrap writes the --grpc-bootstrap for svid, unless the file
// already says the same (atomically: a gRPC process starting meanwhile
// never reads half a file).
func writeGRPCBootstrap(o fetchOptions, svid *x509svid.SVID) error {
	_, svc, err := identity.ParseServiceID(svid.ID)
	if err != nil {
		return fmt.Errorf("--grpc-bootstrap: %w", err)
	}
	nodeID := o.boot.nodeID
	if nodeID == "" {
		host, _ := os.Hostname()
		nodeID = svc + "-" + host
	}
	f := sidecaridentity.FetchFiles
	b, err := grpcbootstrap.Marshal(grpcbootstrap.Config{
		Server: o.xds, Dir: o.out, CertFile: f.Cert, KeyFile: f.Key, CAFile: f.Bundle,
		Service: svc, NodeID: nodeID, Zone: o.boot.zone,
		RefreshInterval: grpcbootstrap.RefreshFor(time.Until(svid.Certificates[0].NotAfter)),
	})
	if err != nil {
		return fmt.Errorf("--grpc-bootstrap: %w", err)
	}
	b = append(b, '\n')
	if old, err := os.ReadFile(o.boot.file); err == nil && bytes.Equal(old, b) {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.boot.file), ".tmp-"+filepath.Base(o.boot.file))
	if err != nil {
		return fmt.Errorf("--grpc-bootstrap: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(b)
	if err := errors.Join(werr, tmp.Chmod(0o644), tmp.Close(), os.Rename(tmp.Name(), o.boot.file)); err != nil {
		return fmt.Errorf("--grpc-bootstrap: %w", err)
	}
	return nil
}
