//go:build !shoal_slim

package main

import (
	"context"
	"flag"
	"io"

	"github.com/shoal-mesh/shoal/internal/demo"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := demo.Config{Out: stdout}
	fs := flag.NewFlagSet("shoal demo", flag.ContinueOnError)
	fs.IntVar(&cfg.Instances, "instances", 3, "number of Node.js instances")
	fs.IntVar(&cfg.Requests, "requests", 3000, "requests per strategy")
	fs.IntVar(&cfg.Concurrency, "concurrency", 16, "concurrent clients")
	fs.BoolVar(&cfg.Keep, "keep", false, "leave the mesh running and print how to reach it")
	fs.StringVar(&cfg.LogFile, "log-file", "", "where the components log (default: a temporary file)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	return demo.Run(ctx, cfg)
}
