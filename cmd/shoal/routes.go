//go:build !shoal_slim

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/shoal-mesh/shoal/controlplane/routes"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

func newRoutesCmd() *cobra.Command {
	routes := groupCmd("routes", "manage routes: apply -f FILE, list, get NAME, delete NAME")
	var f apiFlags
	f.register(routes.PersistentFlags())
	var files []string
	apply := &cobra.Command{
		Use:   "apply -f FILE [-f FILE...]",
		Short: "create or update the routes in YAML/JSON files (a directory: its .yaml, .yml and .json files)",
		RunE: func(cmd *cobra.Command, args []string) error {
			// `-f examples/routes/*.yaml`: the shell expands the glob into
			// one -f value and more arguments; they are files too.
			all := append(append([]string(nil), files...), args...)
			if len(files) == 0 {
				return usageErrorf("-f FILE is required")
			}
			return withRoutes(cmd, f, func(ctx context.Context, c *routesCmd) error { return c.apply(ctx, all) })
		},
	}
	apply.Flags().StringArrayVarP(&files, "filename", "f", nil, "route file (YAML or JSON; repeatable)")
	routes.AddCommand(apply, &cobra.Command{
		Use:   "list",
		Short: "list routes",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withRoutes(cmd, f, func(ctx context.Context, c *routesCmd) error { return c.list(ctx) })
		},
	}, &cobra.Command{
		Use:               "get NAME",
		Short:             "show one route",
		Args:              exactArgs(1, "one route NAME"),
		ValidArgsFunction: completeRoutes(&f),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRoutes(cmd, f, func(ctx context.Context, c *routesCmd) error { return c.get(ctx, args[0]) })
		},
	}, &cobra.Command{
		Use:               "delete NAME",
		Short:             "delete a route",
		Args:              exactArgs(1, "one route NAME"),
		ValidArgsFunction: completeRoutes(&f),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRoutes(cmd, f, func(ctx context.Context, c *routesCmd) error { return c.delete(ctx, args[0]) })
		},
	})
	return routes
}

// withRoutes connects to the management API and runs fn under --timeout.
func withRoutes(cmd *cobra.Command, f apiFlags, fn func(context.Context, *routesCmd) error) error {
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
	return fn(ctx, &routesCmd{f: f, rc: shoalv1.NewRouteServiceClient(conn), stdout: cmd.OutOrStdout()})
}

// completeRoutes completes a route name from the management API.
func completeRoutes(f *apiFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []cobra.Completion
		_ = withRoutes(cmd, *f, func(ctx context.Context, c *routesCmd) error {
			resp, err := c.rc.ListRoutes(ctx, &shoalv1.ListRoutesRequest{})
			for _, r := range resp.GetRoutes() {
				names = append(names, r.GetName())
			}
			return err
		})
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// routesCmd runs one routes subcommand.
type routesCmd struct {
	f      apiFlags
	rc     shoalv1.RouteServiceClient
	stdout io.Writer
}

func (c *routesCmd) apply(ctx context.Context, files []string) error {
	rs, err := readRouteFiles(files)
	if err != nil {
		return err
	}
	for _, r := range rs {
		result, err := c.applyOne(ctx, r)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "route/%s %s\n", r.GetName(), result)
	}
	return nil
}

// applyOne creates r, or updates it unless it is unchanged (ignoring the
// version). The update carries the version read, so a concurrent change
// makes it fail rather than be overwritten.
func (c *routesCmd) applyOne(ctx context.Context, r *shoalv1.Route) (string, error) {
	want := proto.CloneOf(r)
	want.Version = ""
	cur, err := c.rc.GetRoute(ctx, &shoalv1.GetRouteRequest{Name: r.GetName()})
	if status.Code(err) == codes.NotFound {
		if _, err := c.rc.CreateRoute(ctx, &shoalv1.CreateRouteRequest{Route: want}); err != nil {
			return "", c.f.apiError(err)
		}
		return "created", nil
	}
	if err != nil {
		return "", c.f.apiError(err)
	}
	have := proto.CloneOf(cur.GetRoute())
	want.Version, have.Version = "", ""
	if proto.Equal(want, have) {
		return "unchanged", nil
	}
	want.Version = cur.GetRoute().GetVersion()
	if _, err := c.rc.UpdateRoute(ctx, &shoalv1.UpdateRouteRequest{Route: want}); err != nil {
		if status.Code(err) == codes.Aborted {
			return "", fmt.Errorf("route %q changed while it was being applied; apply again", r.GetName())
		}
		return "", c.f.apiError(err)
	}
	return "updated", nil
}

// readRouteFiles parses and validates every file as one set, so that
// nothing is written unless all of them are valid. Errors name the file.
func readRouteFiles(files []string) ([]*shoalv1.Route, error) {
	var all []*shoalv1.Route
	from := map[string]string{} // route name -> file
	files, err := expandDirs(files)
	if err != nil {
		return nil, err
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		rs, err := routes.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "routes: "))
		}
		for _, r := range rs {
			if _, dup := from[r.GetName()]; !dup {
				from[r.GetName()] = file
			}
		}
		all = append(all, rs...)
	}
	if err := routes.ValidateSet(all); err != nil {
		var fe *routes.FieldError
		file := files[0]
		if errors.As(err, &fe) && from[fe.Route] != "" {
			file = from[fe.Route]
		}
		return nil, fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "routes: "))
	}
	return all, nil
}

func (c *routesCmd) list(ctx context.Context) error {
	resp, err := c.rc.ListRoutes(ctx, &shoalv1.ListRoutesRequest{})
	if err != nil {
		return c.f.apiError(err)
	}
	return writeRoutes(c.stdout, c.f.output, resp.GetRoutes(), true)
}

func (c *routesCmd) get(ctx context.Context, name string) error {
	resp, err := c.rc.GetRoute(ctx, &shoalv1.GetRouteRequest{Name: name})
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("route %q not found", name)
	}
	if err != nil {
		return c.f.apiError(err)
	}
	return writeRoutes(c.stdout, c.f.output, []*shoalv1.Route{resp.GetRoute()}, false)
}

func (c *routesCmd) delete(ctx context.Context, name string) error {
	_, err := c.rc.DeleteRoute(ctx, &shoalv1.DeleteRouteRequest{Name: name})
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("route %q not found", name)
	}
	if err != nil {
		return c.f.apiError(err)
	}
	fmt.Fprintf(c.stdout, "route/%s deleted\n", name)
	return nil
}

// writeRoutes prints rs as a table, as a YAML stream (one document per
// route), or as JSON (a list when list is true). YAML and JSON use the
// proto field names, as route files do, so the output can be applied again.
func writeRoutes(w io.Writer, format string, rs []*shoalv1.Route, list bool) error {
	switch format {
	case "table":
		return writeRouteTable(w, rs)
	case "json":
		docs := make([]json.RawMessage, len(rs))
		for i, r := range rs {
			b, err := routeJSON(r)
			if err != nil {
				return err
			}
			docs[i] = b
		}
		var v any = docs
		if !list && len(docs) == 1 {
			v = docs[0]
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	for i, r := range rs {
		b, err := routeJSON(r)
		if err != nil {
			return err
		}
		y, err := yaml.JSONToYAML(b)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(w, "---")
		}
		if _, err := w.Write(y); err != nil {
			return err
		}
	}
	return nil
}

func routeJSON(r *shoalv1.Route) ([]byte, error) { return protoJSON.Marshal(r) }

func writeRouteTable(w io.Writer, rs []*shoalv1.Route) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tHOSTS\tRULES\tSTRATEGIES\tDESTINATIONS\tVERSION")
	for _, r := range rs {
		var strategies, dests []string
		for _, rule := range r.GetRules() {
			if s := routes.StrategyName(rule.GetStrategy()); !slices.Contains(strategies, s) {
				strategies = append(strategies, s)
			}
			for _, d := range rule.GetDestinations() {
				if name := destName(d); !slices.Contains(dests, name) {
					dests = append(dests, name)
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", r.GetName(), strings.Join(r.GetHosts(), ","), len(r.GetRules()),
			strings.Join(strategies, ","), strings.Join(dests, ","), r.GetVersion())
	}
	return tw.Flush()
}

// destName is "service" or "service{labels}".
func destName(d *shoalv1.Destination) string {
	if len(d.GetSubset()) == 0 {
		return d.GetService()
	}
	return d.GetService() + "{" + formatLabels(d.GetSubset()) + "}"
}

// expandDirs replaces each directory by the .yaml, .yml and .json files in
// it, sorted by name (like kubectl apply -f DIR).
func expandDirs(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			switch filepath.Ext(e.Name()) {
			case ".yaml", ".yml", ".json":
				if !e.IsDir() {
					out = append(out, filepath.Join(p, e.Name()))
				}
			}
		}
	}
	return out, nil
}
