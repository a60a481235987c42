//go:build !shoal_slim

package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// apiFlags are the flags of commands that call the management API.
type apiFlags struct {
	addr    string
	output  string
	timeout time.Duration
	// caBundle, token, cert and key authenticate to an API that requires
	// it (beyond loopback, or --api-auth=required).
	caBundle, token, cert, key string
	// fs is the flag set the flags are on, to tell given flags from
	// defaults when applying the config file; configApplied makes that
	// happen once.
	fs            *pflag.FlagSet
	configApplied bool
}

func (f *apiFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.output, "output", "o", "table", "output format: table, yaml or json")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "how long to wait for the management API")
	f.registerConn(fs)
}

// registerConn registers --api and the credential flags.
func (f *apiFlags) registerConn(fs *pflag.FlagSet) {
	f.fs = fs
	fs.StringVar(&f.addr, "api", "127.0.0.1:18001", "management API address (host:port; default from $SHOAL_API or the config file of shoal login)")
	fs.StringVar(&f.caBundle, "ca-bundle", "", "PEM file with the mesh's root CA to verify the management API (default with --token: the root the token names)")
	fs.StringVar(&f.token, "token", "", "bearer token for the management API (shoal tokens create --admin|--viewer; default $SHOAL_TOKEN)")
	fs.StringVar(&f.cert, "cert", "", "client certificate (PEM) for the management API, e.g. from shoal ca issue-admin")
	fs.StringVar(&f.key, "key", "", "client key (PEM) of --cert")
}

func (f *apiFlags) check() error {
	if err := f.applyConfig(); err != nil {
		return err
	}
	switch f.output {
	case "table", "yaml", "json":
	default:
		return usageErrorf("--output %q: want table, yaml or json", f.output)
	}
	if (f.cert == "") != (f.key == "") {
		return usageErrorf("--cert and --key go together")
	}
	return checkHostPort("--api", f.addr)
}

// dial returns a client connection to the management API. It does not
// connect until the first call (grpc.NewClient), which fails with
// Unavailable when nothing listens.
func (f *apiFlags) dial() (*grpc.ClientConn, error) {
	if err := f.applyConfig(); err != nil {
		return nil, err
	}
	opts, err := f.authOptions()
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(f.addr, append(opts,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))...)
	if err != nil {
		return nil, fmt.Errorf("--api %q: %w", f.addr, err)
	}
	return conn, nil
}

// apiError turns an RPC error into one line for the terminal: the server's
// message without the package prefix, or what to check when the API cannot
// be reached.
func (f *apiFlags) apiError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := strings.TrimPrefix(st.Message(), "routes: ")
	switch st.Code() {
	case codes.Unavailable:
		if strings.Contains(msg, "server preface") || strings.Contains(msg, "first record does not look like a TLS handshake") {
			return fmt.Errorf("the management API at %s and this client disagree on TLS: it authenticates beyond loopback (or with --api-auth=required); give --token (or $SHOAL_TOKEN), or --cert/--key with --ca-bundle: %s", f.addr, msg)
		}
		return fmt.Errorf("cannot reach the management API at %s (is `shoal controlplane` running? see --api): %s", f.addr, msg)
	case codes.DeadlineExceeded:
		return fmt.Errorf("the management API at %s did not answer within %v", f.addr, f.timeout)
	case codes.Unauthenticated:
		return fmt.Errorf("the management API at %s needs credentials (--token or $SHOAL_TOKEN, or --cert/--key, with --ca-bundle): %s", f.addr, msg)
	case codes.PermissionDenied:
		return fmt.Errorf("permission denied: %s", msg)
	}
	return errors.New(msg)
}
