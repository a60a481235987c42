//go:build !shoal_slim

package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// registryFlags are the flags of services and instances: the management
// API's (they ask the control plane, which sees etcd and gossip health, so
// they work behind a port-forward to the API alone) and the --etcd they
// had when they read etcd directly, kept so that scripts still run.
func registryFlags(cmd *cobra.Command, f *apiFlags) {
	f.register(cmd.Flags())
	cmd.Flags().String("etcd", "", "ignored: the registry is read through the management API (--api)")
	_ = cmd.Flags().MarkHidden("etcd")
}

// warnEtcdFlag tells a user of the old --etcd where the data comes from now.
func warnEtcdFlag(cmd *cobra.Command) {
	if cmd.Flags().Changed("etcd") {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: --etcd is deprecated and ignored: the registry is read through the management API (--api %s)\n",
			cmd.CommandPath(), cmd.Flag("api").Value)
	}
}

// withRegistry connects to the management API and runs fn under --timeout.
func withRegistry(cmd *cobra.Command, f apiFlags, fn func(context.Context, shoalv1.RegistryServiceClient) error) error {
	if err := f.check(); err != nil {
		return err
	}
	conn, err := f.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	return fn(ctx, shoalv1.NewRegistryServiceClient(conn))
}

func newServicesCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "services",
		Short: "list registered services",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			warnEtcdFlag(cmd)
			return withRegistry(cmd, f, func(ctx context.Context, rc shoalv1.RegistryServiceClient) error {
				resp, err := rc.ListServices(ctx, &shoalv1.ListServicesRequest{})
				if err != nil {
					return f.apiError(err)
				}
				if f.output != "table" {
					return writeProto(cmd.OutOrStdout(), f.output, resp)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SERVICE\tINSTANCES\tHEALTHY")
				for _, s := range resp.GetServices() {
					fmt.Fprintf(tw, "%s\t%d\t%d\n", s.GetName(), s.GetInstances(), s.GetHealthyInstances())
				}
				return tw.Flush()
			})
		},
	}
	registryFlags(cmd, &f)
	return cmd
}

func newInstancesCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "instances [SERVICE]",
		Short: "list the instances of a service (all services without SERVICE)",
		Args:  maxArgs(1, "one SERVICE"),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			var names []cobra.Completion
			if len(args) == 0 {
				_ = withRegistry(cmd, f, func(ctx context.Context, rc shoalv1.RegistryServiceClient) error {
					resp, err := rc.ListServices(ctx, &shoalv1.ListServicesRequest{})
					for _, s := range resp.GetServices() {
						names = append(names, s.GetName())
					}
					return err
				})
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			warnEtcdFlag(cmd)
			service := ""
			if len(args) == 1 {
				service = args[0]
			}
			return withRegistry(cmd, f, func(ctx context.Context, rc shoalv1.RegistryServiceClient) error {
				resp, err := rc.ListInstances(ctx, &shoalv1.ListInstancesRequest{Service: service})
				if err != nil {
					return f.apiError(err)
				}
				if service != "" && len(resp.GetInstances()) == 0 {
					return fmt.Errorf("service %q has no registered instances (see `shoal services`)", service)
				}
				return printInstances(cmd.OutOrStdout(), cmd.ErrOrStderr(), f.output, resp)
			})
		},
	}
	registryFlags(cmd, &f)
	return cmd
}

// printInstances writes resp as a table (with a warning on stderr for
// each address registered more than once) or as JSON/YAML.
func printInstances(stdout, stderr io.Writer, output string, resp *shoalv1.ListInstancesResponse) error {
	if output != "table" {
		return writeProto(stdout, output, resp)
	}
	dups := duplicateAddresses(resp.GetInstances())
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tID\tADDRESS\tPROTOCOL\tZONE\tWEIGHT\tHEALTH\tMETADATA")
	for _, in := range resp.GetInstances() {
		addr := hostPort(in)
		if len(dups[in.GetService()+" "+addr]) > 1 {
			addr += " (DUPLICATE)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", in.GetService(), in.GetId(), addr, in.GetProtocol(),
			orDash(in.GetZone()), in.GetWeight(), healthName(in.GetHealth()), formatLabels(in.GetMetadata()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, key := range sortedKeys(dups) {
		if ids := dups[key]; len(ids) > 1 {
			_, addr, _ := strings.Cut(key, " ")
			fmt.Fprintf(stderr, "warning: %s is registered %d times (%s): the control plane serves one of them (`shoal status` says which; README, \"Duplicate registrations\")\n",
				addr, len(ids), strings.Join(ids, ", "))
		}
	}
	return nil
}

// duplicateAddresses maps "service host:port" to the ids of the
// instances registered there; the control plane serves one per address
// and service.
func duplicateAddresses(ins []*shoalv1.Instance) map[string][]string {
	m := map[string][]string{}
	for _, in := range ins {
		key := in.GetService() + " " + hostPort(in)
		m[key] = append(m[key], in.GetId())
	}
	return m
}

func hostPort(in *shoalv1.Instance) string {
	host := in.GetAddress()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return fmt.Sprintf("%s:%d", host, in.GetPort())
}

func healthName(h shoalv1.HealthStatus) string {
	switch h {
	case shoalv1.HealthStatus_HEALTH_STATUS_HEALTHY:
		return "healthy"
	case shoalv1.HealthStatus_HEALTH_STATUS_UNHEALTHY:
		return "unhealthy"
	case shoalv1.HealthStatus_HEALTH_STATUS_SUSPECT:
		return "suspect"
	case shoalv1.HealthStatus_HEALTH_STATUS_DRAINING:
		return "draining"
	}
	return "unknown"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
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

// writeProto writes m as JSON or YAML with the proto field names
// (snake_case), the names route files use, so every command's JSON and
// YAML output agrees.
func writeProto(w io.Writer, format string, m proto.Message) error {
	data, err := protoJSON.Marshal(m)
	if err != nil {
		return err
	}
	return writeJSONOrYAML(w, format, data)
}
