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
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// apiFlags are the flags of commands that call the management API.
type apiFlags struct {
	addr    string
	output  string
	timeout time.Duration
}

func (f *apiFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.addr, "api", "127.0.0.1:18001", "management API address (host:port)")
	fs.StringVarP(&f.output, "output", "o", "table", "output format: table, yaml or json")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "how long to wait for the management API")
}

func (f *apiFlags) check() error {
	switch f.output {
	case "table", "yaml", "json":
	default:
		return usageErrorf("--output %q: want table, yaml or json", f.output)
	}
	return checkHostPort("--api", f.addr)
}

// dial returns a client connection to the management API. It does not
// connect until the first call (grpc.NewClient), which fails with
// Unavailable when nothing listens.
func (f *apiFlags) dial() (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(f.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
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
		return fmt.Errorf("cannot reach the management API at %s (is `shoal controlplane` running? see --api): %s", f.addr, msg)
	case codes.DeadlineExceeded:
		return fmt.Errorf("the management API at %s did not answer within %v", f.addr, f.timeout)
	}
	return errors.New(msg)
}
