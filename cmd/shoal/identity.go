//go:build !shoal_slim

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

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
	fetch := &cobra.Command{
		Use:   "fetch --join-token-file F --out DIR",
		Short: "get an SVID for a join token and keep cert.pem, key.pem and ca.pem fresh in DIR",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("--out is required")
			}
			return identityFetch(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), idf, xds, out, logLevel, once)
		},
	}
	goFlags := flag.NewFlagSet("shoal identity fetch", flag.ContinueOnError)
	idf.register(goFlags)
	fetch.Flags().AddGoFlagSet(goFlags)
	fetch.Flags().StringVar(&xds, "xds", "127.0.0.1:18000", "control plane xDS address (serves the IdentityService)")
	fetch.Flags().StringVar(&out, "out", "", "directory for cert.pem, key.pem (0600) and ca.pem (required)")
	fetch.Flags().BoolVar(&once, "once", false, "fetch (or keep a valid one) and exit instead of renewing")
	fetch.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	id.AddCommand(fetch)
	return id
}

func identityFetch(ctx context.Context, stdout, stderr io.Writer, idf identityFlags, xds, out, logLevel string, once bool) error {
	if err := checkHostPort("--xds", xds); err != nil {
		return err
	}
	token, bundle, err := idf.resolve()
	if err != nil {
		return err
	}
	logger, err := newLogger(stderr, logLevel)
	if err != nil {
		return err
	}
	c, err := sidecaridentity.New(sidecaridentity.Config{
		Server: xds, Token: token, CABundle: bundle, StateDir: out, Files: sidecaridentity.FetchFiles, Logger: logger,
		OnRotate: func(s *x509svid.SVID) {
			fmt.Fprintf(stdout, "%s serial %s expires %s\n", s.ID, s.Certificates[0].SerialNumber.Text(16), s.Certificates[0].NotAfter.Format(time.RFC3339))
		},
	})
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	if once {
		return nil
	}
	return c.Run(ctx)
}
