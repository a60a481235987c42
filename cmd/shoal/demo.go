//go:build !shoal_slim

package main

import (
	"github.com/spf13/cobra"

	"github.com/shoal-mesh/shoal/cmd/shoal/internal/demo"
)

func newDemoCmd() *cobra.Command {
	var cfg demo.Config
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "run a whole mesh on this machine and show each strategy and a failover",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Out = cmd.OutOrStdout()
			return demo.Run(cmd.Context(), cfg)
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&cfg.Instances, "instances", 3, "number of Node.js instances")
	fs.IntVar(&cfg.Requests, "requests", 3000, "requests per strategy")
	fs.IntVar(&cfg.Concurrency, "concurrency", 16, "concurrent clients")
	fs.BoolVar(&cfg.Keep, "keep", false, "leave the mesh running and print how to reach it")
	fs.StringVar(&cfg.LogFile, "log-file", "", "where the components log (default: a temporary file)")
	return cmd
}
