//go:build !shoal_slim

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/shoal-mesh/shoal/controlplane/identity"
	shoalidentity "github.com/shoal-mesh/shoal/identity"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

func runCA(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "init" {
		fmt.Fprintln(stderr, "usage: shoal ca init --dir DIR [--trust-domain TD]")
		return errUsage
	}
	fs := flag.NewFlagSet("shoal ca init", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory to write root.crt, root.key (10 years), ca.crt, ca.key (1 year) into (required)")
	td := fs.String("trust-domain", shoalidentity.DefaultTrustDomain, "SPIFFE trust domain")
	if err := parseFlags(fs, args[1:], stderr); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--dir is required")
	}
	domain, err := spiffeid.TrustDomainFromString(*td)
	if err != nil {
		return fmt.Errorf("--trust-domain %q: %w", *td, err)
	}
	if err := identity.Init(*dir, domain, time.Now()); err != nil {
		return err
	}
	ca, err := identity.Load(*dir, domain)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote the CA of %s to %s\nroot fingerprint (sha256): %s\nroot expires %s, intermediate %s\n"+
		"Move root.key offline; the control planes need ca.crt, ca.key and root.crt (--ca-dir).\n",
		domain.Name(), *dir, shoalidentity.Fingerprint(ca.Root()),
		ca.Root().NotAfter.Format(time.DateOnly), ca.Intermediate().NotAfter.Format(time.DateOnly))
	return nil
}

func runTokens(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprintln(stderr, "usage: shoal tokens create --service NAME [--namespace NS] [--ttl 1h] [--uses N]")
		return errUsage
	}
	var api apiFlags
	fs := flag.NewFlagSet("shoal tokens create", flag.ContinueOnError)
	api.register(fs)
	service := fs.String("service", "", "the service the token gives an identity to (required)")
	ns := fs.String("namespace", shoalidentity.DefaultNamespace, "the service's namespace")
	ttl := fs.Duration("ttl", identity.DefaultTokenTTL, "how long the token can be used")
	uses := fs.Int("uses", 1, "how many workloads may use the token")
	if err := parseFlags(fs, args[1:], stderr); err != nil {
		return err
	}
	if *service == "" {
		return errors.New("--service is required")
	}
	conn, err := api.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, api.timeout)
	defer cancel()
	resp, err := shoalv1.NewTokenServiceClient(conn).CreateToken(ctx, &shoalv1.CreateTokenRequest{
		Service: *service, Namespace: *ns, TtlSeconds: int64(ttl.Seconds()), Uses: int32(*uses),
	})
	if err != nil {
		return api.apiError(err)
	}
	fmt.Fprintln(stdout, resp.Token)
	fmt.Fprintf(stderr, "token for %s, %d use(s), expires %s\n", resp.SpiffeId, *uses, resp.ExpiresAt.AsTime().Local().Format(time.RFC3339))
	return nil
}
