package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	sidecaridentity "github.com/shoal-mesh/shoal/sidecar/identity"
)

// runIdentity is `shoal identity fetch`: it keeps cert.pem, key.pem and
// ca.pem fresh in --out for a proxyless gRPC client or server (grpc-go's
// file_watcher certificate provider), renewing at half the lifetime until
// stopped (or once with --once).
func runIdentity(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "fetch" {
		fmt.Fprintln(stderr, "usage: shoal identity fetch --join-token-file F --out DIR [--xds ADDR] [--once]")
		return errUsage
	}
	var idf identityFlags
	fs := flag.NewFlagSet("shoal identity fetch", flag.ContinueOnError)
	idf.register(fs)
	xds := fs.String("xds", "127.0.0.1:18000", "control plane xDS address (serves the IdentityService)")
	out := fs.String("out", "", "directory for cert.pem, key.pem (0600) and ca.pem (required)")
	once := fs.Bool("once", false, "fetch (or keep a valid one) and exit instead of renewing")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args[1:], stderr); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out is required")
	}
	token, bundle, err := idf.resolve()
	if err != nil {
		return err
	}
	c, err := sidecaridentity.New(sidecaridentity.Config{
		Server: *xds, Token: token, CABundle: bundle, StateDir: *out, Files: sidecaridentity.FetchFiles,
		Logger: newLogger(stderr, *logLevel),
		OnRotate: func(s *x509svid.SVID) {
			fmt.Fprintf(stdout, "%s serial %s expires %s\n", s.ID, s.Certificates[0].SerialNumber.Text(16), s.Certificates[0].NotAfter.Format("2006-01-02T15:04:05Z07:00"))
		},
	})
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	if *once {
		return nil
	}
	return c.Run(ctx)
}
