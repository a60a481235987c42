//go:build shoal_slim

// Command shoal, built with -tags shoal_slim, is the slim sidecar shipped
// as /shoal-sidecar: the sidecar and gateway commands only, parsed with the
// standard flag package. The full binary's CLI (spf13/cobra) added 1 MiB
// to the sidecar's RSS with 1,000 endpoints (17.7-17.9 MiB with flag,
// 18.7-18.9 MiB with cobra; bench/rss.sh), against a 20 MiB budget.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const slimUsage = `usage: shoal-sidecar COMMAND [flags]

commands:
  sidecar   run a sidecar next to an app instance
  gateway   run the edge gateway
  version   print the version, commit and build date

Run 'shoal-sidecar COMMAND -h' for a command's flags. This is the slim
build of shoal; the full binary has the control plane and the CLI.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, slimUsage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, slimUsage)
		return 0
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "shoal", currentBuild())
		return 0
	}
	var pc proxyCommand
	switch args[0] {
	case "sidecar":
		pc = sidecarCommand()
	case "gateway":
		pc = gatewayCommand()
	default:
		fmt.Fprintf(stderr, "shoal: unknown command %q\n\n%s", args[0], slimUsage)
		return 2
	}
	pc.flags.SetOutput(stderr)
	if err := pc.flags.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // the flag package printed the error and the usage
	}
	if pc.flags.NArg() > 0 {
		fmt.Fprintf(stderr, "shoal %s: want no arguments, got %q\n", pc.name, pc.flags.Args())
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := pc.run(ctx, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "shoal %s: %v\n", pc.name, err)
	}
	return exitCode(err)
}
