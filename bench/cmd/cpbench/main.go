// Command cpbench measures how fast the shoal control plane brings an
// endpoint change to many xDS clients: N simulated clients (real gRPC ADS
// streams, delta and state-of-the-world, a mix of sidecar, Envoy and
// proxyless gRPC node identities) subscribe to CDS, EDS, LDS and RDS as
// wildcards and ACK every response; the registry holds S services × E
// endpoints in etcd; a churn loop changes one endpoint address at a time
// and waits until every client has received and ACKed it.
//
// It reports the latency from the etcd write to the last client's ACK
// (p50/p99 over changes), per-client latencies, response bytes per change
// per client (delta vs SotW), and the control plane's CPU per change and
// RSS from /proc. Pieces the control plane does not serve yet are reported,
// not fatal.
//
// bench/run.sh --cpbench [flags] builds and runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Config is cpbench's configuration; parseConfig fills it from flags.
type Config struct {
	Clients   int           // simulated xDS clients
	Mode      string        // delta, sotw or mixed (even ids delta, odd SotW)
	Services  int           // services registered
	Endpoints int           // endpoints per service
	Changes   int           // endpoint changes in the churn
	Interval  time.Duration // pause between changes
	Wait      time.Duration // how long a change may take to reach every client
	Sync      time.Duration // how long the initial sync may take

	ShoalBin   string
	CPUs       string // taskset list for the control plane; empty: not pinned
	XDS, Etcd  string // an existing control plane (both set) instead of starting one
	ResultsDir string
	WorkDir    string
	// ProfileDir, when set, starts the control plane with --pprof and
	// saves its heap profile there after the churn, while the clients are
	// still connected and idle.
	ProfileDir string
	// Settle is how long the clients stay connected and idle after the
	// churn before the control plane's memory is read; Idle how long they
	// are idle between the initial sync and the churn.
	Settle, Idle time.Duration
	// CPArgs are extra flags for `shoal controlplane`, CPEnv extra
	// environment (GOGC=50, GOMEMLIMIT=256MiB).
	CPArgs, CPEnv []string
}

func parseConfig(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("cpbench", flag.ContinueOnError)
	fs.IntVar(&c.Clients, "clients", 100, "simulated xDS clients (100 → 1000)")
	fs.StringVar(&c.Mode, "mode", "mixed", "delta, sotw, or mixed (half each)")
	fs.IntVar(&c.Services, "services", 1000, "services in the registry")
	fs.IntVar(&c.Endpoints, "endpoints", 10, "endpoints per service")
	fs.IntVar(&c.Changes, "changes", 50, "endpoint changes to measure")
	fs.DurationVar(&c.Interval, "interval", 200*time.Millisecond, "pause between changes")
	fs.DurationVar(&c.Wait, "wait", 10*time.Second, "longest a change may take to reach every client")
	fs.DurationVar(&c.Sync, "sync", 2*time.Minute, "longest the initial sync of every client may take")
	fs.StringVar(&c.ShoalBin, "shoal", "bench/results/bin/shoal", "shoal binary")
	fs.StringVar(&c.CPUs, "cpus", "", "taskset CPU list for the control plane (default: not pinned)")
	fs.StringVar(&c.XDS, "xds", "", "xDS address of a running control plane (with -etcd)")
	fs.StringVar(&c.Etcd, "etcd", "", "etcd client address of that control plane (host:port)")
	fs.StringVar(&c.ResultsDir, "results", "bench/results", "directory for the JSON and markdown results")
	fs.StringVar(&c.WorkDir, "work", "", "working directory (default: a temp dir)")
	fs.StringVar(&c.ProfileDir, "profile", "", "save the control plane's heap profile (pprof) in this directory after the churn")
	fs.DurationVar(&c.Settle, "settle", 2*time.Second, "idle time after the churn before memory is read")
	fs.DurationVar(&c.Idle, "idle", 0, "idle time between the initial sync and the churn (the churn's CPU then excludes the sync's aftermath)")
	cpArgs := fs.String("cp-args", "", "extra space-separated flags for shoal controlplane")
	cpEnv := fs.String("cp-env", "", "extra space-separated NAME=VALUE environment for shoal controlplane (GOGC=50)")
	quick := fs.Bool("quick", false, "smoke run: 20 clients, 100 services, 10 changes")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.CPArgs, c.CPEnv = strings.Fields(*cpArgs), strings.Fields(*cpEnv)
	if *quick {
		c.Clients, c.Services, c.Changes = 20, 100, 10
	}
	switch {
	case c.Mode != "delta" && c.Mode != "sotw" && c.Mode != "mixed":
		return c, fmt.Errorf("-mode %q: want delta, sotw or mixed", c.Mode)
	case c.Clients < 1 || c.Services < 1 || c.Endpoints < 1 || c.Changes < 1:
		return c, errors.New("-clients, -services, -endpoints and -changes must be positive")
	case (c.XDS == "") != (c.Etcd == ""):
		return c, errors.New("-xds and -etcd go together")
	}
	return c, nil
}

func main() {
	cfg, err := parseConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "cpbench:", err)
		os.Exit(1)
	}
}
