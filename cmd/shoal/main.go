//go:build !shoal_slim

// Command shoal is the one binary of the shoal service mesh: control plane,
// sidecar, gateway, demo and the management CLI.
//
// The command tree is built with spf13/cobra (as kubectl, etcdctl and
// linkerd are): flags are POSIX style (--name, -o), may follow positional
// arguments, and `shoal completion bash|zsh|fish` prints a completion
// script. Each subcommand turns its flags into its package's Config and
// calls Run with a context that ends on SIGINT or SIGTERM.
//
// The slim sidecar build (-tags shoal_slim, shipped as /shoal-sidecar) has
// only the sidecar and gateway commands and parses them with the standard
// flag package (slim.go): cobra cost it 1 MiB of RSS.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit status: 0, 1
// when the command failed, 2 when it was called wrongly.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(normalizeArgs(root, args))
	root.SetOut(stdout)
	root.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	if cmd == nil {
		cmd = root
	}
	if exitCode(err) == 2 {
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", cmd.CommandPath(), err, cmd.CommandPath())
		return 2
	}
	fmt.Fprintf(stderr, "%s: %v\n", cmd.CommandPath(), err)
	return 1
}

// newRootCmd returns the command tree.
func newRootCmd() *cobra.Command {
	root := groupCmd("shoal", "shoal is a service mesh for fleets of Node.js services")
	root.Long = "shoal is a service mesh for fleets of Node.js services: instances register in etcd, gossip\n" +
		"spreads their health, a control plane serves xDS, and sidecars route with per-route strategies."
	root.Version = currentBuild().String()
	root.SetVersionTemplate("shoal {{.Version}}\n")
	root.SilenceErrors, root.SilenceUsage = true, true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.SetGlobalNormalizationFunc(flagAliases)
	root.AddCommand(
		newDemoCmd(),
		newControlPlaneCmd(),
		proxyCobraCmd(sidecarCommand()),
		proxyCobraCmd(gatewayCommand()),
		newInjectCmd(),
		newInjectWebhookCmd(),
		newServicesCmd(),
		newInstancesCmd(),
		newRoutesCmd(),
		newPoliciesCmd(),
		newCACmd(),
		newTokensCmd(),
		newIdentityCmd(),
		newStatusCmd(),
		newLoginCmd(),
		newCheckCmd(),
		newTopCmd(),
		newGossipCmd(),
		newVersionCmd(),
	)
	return root
}

// proxyCobraCmd wraps the sidecar or gateway command, whose flags are
// shared with the slim build's standard flag parsing.
func proxyCobraCmd(pc proxyCommand) *cobra.Command {
	cmd := &cobra.Command{
		Use:   pc.use,
		Short: pc.summary,
		Args:  exactArgs(0, "no arguments"),
		RunE:  func(cmd *cobra.Command, _ []string) error { return pc.run(cmd.Context(), cmd.ErrOrStderr()) },
	}
	cmd.Flags().AddGoFlagSet(pc.flags)
	return cmd
}

// groupCmd returns a command that only holds subcommands: called alone it
// prints its help and fails with a usage error; called with an unknown
// subcommand it names it and suggests the nearest.
func groupCmd(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:                        use,
		Short:                      short,
		SuggestionsMinimumDistance: 2,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				msg := fmt.Sprintf("unknown command %q", args[0])
				if s := c.SuggestionsFor(args[0]); len(s) > 0 {
					msg += fmt.Sprintf(" (did you mean %q?)", s[0])
				}
				return usageError{errors.New(msg)}
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			c.SetOut(c.ErrOrStderr())
			_ = c.Help()
			return usageErrorf("a command is required")
		},
	}
}

// exactArgs is cobra.ExactArgs as a usage error naming what is wanted.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("want %s, got %d argument(s)", what, len(args))
		}
		return nil
	}
}

// maxArgs is cobra.MaximumNArgs as a usage error.
func maxArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > n {
			return usageErrorf("want at most %s, got %d arguments", what, len(args))
		}
		return nil
	}
}

// flagAliases maps the long names the flag package accepted for what are
// now shorthands (--o json, --f FILE, --q) to the new long names.
func flagAliases(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	switch name {
	case "o":
		return "output"
	case "f":
		return "filename"
	case "q":
		return "quiet"
	}
	return pflag.NormalizedName(name)
}

// normalizeArgs rewrites single-dash long flags (-api ADDR, -service=web),
// which the flag package accepted and scripts may still use, to the
// double-dash form; a single dash followed by one letter stays a
// shorthand. Everything after "--" is left alone.
func normalizeArgs(root *cobra.Command, args []string) []string {
	long := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) { long[f.Name] = true })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { long[f.Name] = true })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	out := make([]string, len(args))
	for i, a := range args {
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(name) > 1 && long[name] {
			a = "-" + a
		}
		out[i] = a
	}
	return out
}

func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "print the version, commit and build date",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := currentBuild()
			switch output {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(b)
			case "", "text":
				fmt.Fprintln(cmd.OutOrStdout(), "shoal", b)
				return nil
			}
			return usageErrorf("--output %q: want text or json", output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}
