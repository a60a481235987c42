//go:build !shoal_slim

package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/shoal-mesh/shoal/controlplane/identity"
	shoalidentity "github.com/shoal-mesh/shoal/identity"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// newCACmd is `shoal ca init`.
func newCACmd() *cobra.Command {
	ca := groupCmd("ca", "manage the mesh CA: init --dir DIR")
	var dir, td string
	initCmd := &cobra.Command{
		Use:   "init --dir DIR",
		Short: "write a new root (10 years) and intermediate (1 year) CA for --ca-dir",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageErrorf("--dir is required")
			}
			return caInit(cmd.OutOrStdout(), dir, td)
		},
	}
	initCmd.Flags().StringVar(&dir, "dir", "", "directory to write root.crt, root.key, ca.crt, ca.key into (required)")
	initCmd.Flags().StringVar(&td, "trust-domain", shoalidentity.DefaultTrustDomain, "SPIFFE trust domain")
	ca.AddCommand(initCmd)
	return ca
}

func caInit(stdout io.Writer, dir, td string) error {
	domain, err := spiffeid.TrustDomainFromString(td)
	if err != nil {
		return usageErrorf("--trust-domain %q: %v", td, err)
	}
	if err := identity.Init(dir, domain, time.Now()); err != nil {
		return err
	}
	ca, err := identity.Load(dir, domain)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote the CA of %s to %s\nroot fingerprint (sha256): %s\nroot expires %s, intermediate %s\n"+
		"Move root.key offline; the control planes need ca.crt, ca.key and root.crt (--ca-dir).\n",
		domain.Name(), dir, shoalidentity.Fingerprint(ca.Root()),
		ca.Root().NotAfter.Format(time.DateOnly), ca.Intermediate().NotAfter.Format(time.DateOnly))
	return nil
}

// newTokensCmd is `shoal tokens create`.
func newTokensCmd() *cobra.Command {
	tokens := groupCmd("tokens", "manage join tokens: create --service NAME [--namespace NS] [--ttl 1h] [--uses N]")
	var f apiFlags
	var req tokenRequest
	create := &cobra.Command{
		Use:   "create --service NAME",
		Short: "make a join token bound to one identity; prints the token alone on stdout",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if req.service == "" {
				return usageErrorf("--service is required")
			}
			return createToken(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f, req)
		},
	}
	f.register(create.Flags())
	create.Flags().StringVar(&req.service, "service", "", "the service the token gives an identity to (required)")
	create.Flags().StringVar(&req.namespace, "namespace", shoalidentity.DefaultNamespace, "the service's namespace")
	create.Flags().DurationVar(&req.ttl, "ttl", identity.DefaultTokenTTL, "how long the token can be used")
	create.Flags().IntVar(&req.uses, "uses", 1, "how many workloads may use the token")
	tokens.AddCommand(create)
	return tokens
}

type tokenRequest struct {
	service, namespace string
	ttl                time.Duration
	uses               int
}

func createToken(ctx context.Context, stdout, stderr io.Writer, f apiFlags, req tokenRequest) error {
	conn, err := f.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	resp, err := shoalv1.NewTokenServiceClient(conn).CreateToken(ctx, &shoalv1.CreateTokenRequest{
		Service: req.service, Namespace: req.namespace, TtlSeconds: int64(req.ttl.Seconds()), Uses: int32(req.uses),
	})
	if err != nil {
		return f.apiError(err)
	}
	fmt.Fprintln(stdout, resp.Token)
	fmt.Fprintf(stderr, "token for %s, %d use(s), expires %s\n", resp.SpiffeId, req.uses, resp.ExpiresAt.AsTime().Local().Format(time.RFC3339))
	return nil
}
