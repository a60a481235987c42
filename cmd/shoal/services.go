//go:build !shoal_slim

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoal-mesh/shoal/internal/etcdclient"
	"github.com/shoal-mesh/shoal/registry/etcdstore"
)

// etcdFlags are the flags of commands that read etcd directly.
type etcdFlags struct {
	endpoints string
	output    string
	timeout   time.Duration
}

func (f *etcdFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.endpoints, "etcd", "127.0.0.1:2379", "comma-separated etcd endpoints")
	fs.StringVar(&f.output, "o", "table", "output format: table or json")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Second, "how long to wait for etcd")
}

func (f *etcdFlags) store() (*etcdstore.Store, func(), error) {
	if f.output != "table" && f.output != "json" {
		return nil, nil, fmt.Errorf("-o %q: want table or json", f.output)
	}
	cli, err := etcdclient.New(splitList(f.endpoints))
	if err != nil {
		return nil, nil, err
	}
	quiet := slog.New(slog.DiscardHandler)
	return etcdstore.New(cli, quiet), func() { cli.Close() }, nil
}

func runServices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f etcdFlags
	fs := flag.NewFlagSet("shoal services", flag.ContinueOnError)
	f.register(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	st, closeFn, err := f.store()
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	svcs, err := st.Services(ctx)
	if err != nil {
		return err
	}
	if f.output == "json" {
		return writeJSON(stdout, nonNil(svcs))
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tINSTANCES")
	for _, s := range svcs {
		fmt.Fprintf(tw, "%s\t%d\n", s.Name, s.Instances)
	}
	return tw.Flush()
}

func runInstances(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f etcdFlags
	fs := flag.NewFlagSet("shoal instances", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: shoal instances [flags] [SERVICE]"); fs.PrintDefaults() }
	f.register(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return errUsage
	}
	st, closeFn, err := f.store()
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	ins, _, err := st.List(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if f.output == "json" {
		return writeJSON(stdout, nonNil(ins))
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tID\tADDRESS\tPROTOCOL\tZONE\tWEIGHT\tMETADATA")
	for _, in := range ins {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", in.Service, in.ID, in.HostPort(), in.Protocol, in.Zone, in.Weight, formatLabels(in.Metadata))
	}
	return tw.Flush()
}

func formatLabels(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	kv := make([]string, 0, len(m))
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
