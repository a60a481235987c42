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

	var caDir, out, adminTD string
	var ttl time.Duration
	issueAdmin := &cobra.Command{
		Use:   "issue-admin --ca-dir DIR --out DIR",
		Short: "write a certificate of the admin identity (spiffe://<td>/ns/shoal-system/svc/admin) for the management API: cert.pem, key.pem, ca.pem",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("--out is required")
			}
			return caIssueAdmin(cmd.OutOrStdout(), caDir, adminTD, out, ttl)
		},
	}
	issueAdmin.Flags().StringVar(&caDir, "ca-dir", "shoal-data/ca", "the CA's directory (the control plane's --ca-dir, or --data-dir/ca for its development CA)")
	issueAdmin.Flags().StringVar(&out, "out", "", "directory to write cert.pem, key.pem (0600) and ca.pem into (required)")
	issueAdmin.Flags().StringVar(&adminTD, "trust-domain", shoalidentity.DefaultTrustDomain, "SPIFFE trust domain")
	issueAdmin.Flags().DurationVar(&ttl, "ttl", identity.DefaultAdminTTL, "lifetime of the certificate")
	ca.AddCommand(issueAdmin)
	return ca
}

func caIssueAdmin(stdout io.Writer, caDir, td, out string, ttl time.Duration) error {
	domain, err := spiffeid.TrustDomainFromString(td)
	if err != nil {
		return usageErrorf("--trust-domain %q: %v", td, err)
	}
	if ttl < time.Minute {
		return usageErrorf("--ttl %s: want at least 1m", ttl)
	}
	ca, err := identity.Load(caDir, domain)
	if err != nil {
		return fmt.Errorf("--ca-dir: %w", err)
	}
	id, err := ca.WriteAdmin(out, ttl, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s's certificate to %s (cert.pem, key.pem, ca.pem)\n"+
		"use it with: --cert %[2]s/cert.pem --key %[2]s/key.pem --ca-bundle %[2]s/ca.pem\n", id, out)
	return nil
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
			switch {
			case req.admin && req.viewer:
				return usageErrorf("--admin and --viewer: give one")
			case req.admin || req.viewer:
				if req.service != "" {
					return usageErrorf("--service: an API token (--admin or --viewer) is not bound to a service")
				}
			case req.service == "":
				return usageErrorf("--service is required (or --admin / --viewer for a management API token)")
			}
			return createToken(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f, req)
		},
	}
	f.register(create.Flags())
	create.Flags().StringVar(&req.service, "service", "", "the service the token gives an identity to (required)")
	create.Flags().StringVar(&req.namespace, "namespace", shoalidentity.DefaultNamespace, "the service's namespace")
	create.Flags().DurationVar(&req.ttl, "ttl", identity.DefaultTokenTTL, "how long the token can be used")
	create.Flags().IntVar(&req.uses, "uses", 1, "how many workloads may use the token")
	create.Flags().BoolVar(&req.admin, "admin", false, "make a bearer token for the management API with the admin role (everything) instead of a join token")
	create.Flags().BoolVar(&req.viewer, "viewer", false, "make a bearer token for the management API with the viewer role (read only) instead of a join token")
	tokens.AddCommand(create)
	return tokens
}

type tokenRequest struct {
	service, namespace string
	ttl                time.Duration
	uses               int
	admin, viewer      bool
}

func createToken(ctx context.Context, stdout, stderr io.Writer, f apiFlags, req tokenRequest) error {
	conn, err := f.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	creq := &shoalv1.CreateTokenRequest{
		Service: req.service, Namespace: req.namespace, TtlSeconds: int64(req.ttl.Seconds()), Uses: int32(req.uses),
	}
	if req.admin || req.viewer {
		creq = &shoalv1.CreateTokenRequest{Role: "viewer", TtlSeconds: int64(req.ttl.Seconds())}
		if req.admin {
			creq.Role = "admin"
		}
	}
	resp, err := shoalv1.NewTokenServiceClient(conn).CreateToken(ctx, creq)
	if err != nil {
		return f.apiError(err)
	}
	fmt.Fprintln(stdout, resp.Token)
	if resp.Role != "" {
		fmt.Fprintf(stderr, "management API token, role %s, expires %s\n", resp.Role, resp.ExpiresAt.AsTime().Local().Format(time.RFC3339))
		return nil
	}
	fmt.Fprintf(stderr, "token for %s, %d use(s), expires %s\n", resp.SpiffeId, req.uses, resp.ExpiresAt.AsTime().Local().Format(time.RFC3339))
	return nil
}
