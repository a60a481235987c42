// Command lbbench measures load balancing over Node.js instances that are
// unequal in ways a connection count does not show (issue 17): three real
// Node.js processes registered with @shoal-mesh/node (which reports its
// event-loop load on every response) — one healthy, one whose event loop
// blocks 150 ms every second, one limited to half a CPU by a cgroup —
// under an open-loop load at 70 % of the fleet's measured capacity,
// through nginx least_conn, HAProxy leastconn and the shoal sidecar with
// round robin, least request and least loaded. Rounds are interleaved;
// the report gives medians of p50/p99/p99.9, errors and each instance's
// share, and a PNG of the shares over time.
//
// bench/run.sh --lb installs the tools, builds the binaries and runs it;
// see bench/README.md.
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
		fmt.Fprintln(os.Stderr, "lbbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "lbbench:", err)
		os.Exit(1)
	}
}
