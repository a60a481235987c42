// Command sidebyside measures the shoal sidecar side by side with nginx and
// HAProxy (and a direct baseline) on one machine: three loopback backends,
// wrk at a fixed concurrency, each proxy with one worker pinned to its own
// CPU, A/B interleaved runs and medians. It prints a markdown table and the
// shoal/nginx and shoal/HAProxy ratios, and writes the raw results as JSON.
//
// bench/run.sh installs the tools, builds the binaries and runs it; see
// bench/README.md for what is measured and how to read it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	cfg, err := parseConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sidebyside:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "sidebyside:", err)
		os.Exit(1)
	}
}
