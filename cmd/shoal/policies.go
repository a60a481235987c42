//go:build !shoal_slim

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/shoal-mesh/shoal/controlplane/policies"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

func newPoliciesCmd() *cobra.Command {
	cmd := groupCmd("policies", "manage authorization policies: apply -f FILE, list, get NAME, delete NAME")
	var f apiFlags
	f.register(cmd.PersistentFlags())
	var files []string
	apply := &cobra.Command{
		Use:   "apply -f FILE [-f FILE...]",
		Short: "create or update the authorization policies in YAML/JSON files (a directory: its .yaml, .yml and .json files)",
		RunE: func(cc *cobra.Command, args []string) error {
			all := append(append([]string(nil), files...), args...)
			if len(files) == 0 {
				return usageErrorf("-f FILE is required")
			}
			return withPolicies(cc, f, func(ctx context.Context, c *policiesCmd) error { return c.apply(ctx, all) })
		},
	}
	apply.Flags().StringArrayVarP(&files, "filename", "f", nil, "policy file (YAML or JSON; repeatable)")
	cmd.AddCommand(apply, &cobra.Command{
		Use:   "list",
		Short: "list authorization policies",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cc *cobra.Command, _ []string) error {
			return withPolicies(cc, f, func(ctx context.Context, c *policiesCmd) error { return c.list(ctx) })
		},
	}, &cobra.Command{
		Use:   "get NAME",
		Short: "show one authorization policy",
		Args:  exactArgs(1, "one policy NAME"),
		RunE: func(cc *cobra.Command, args []string) error {
			return withPolicies(cc, f, func(ctx context.Context, c *policiesCmd) error { return c.get(ctx, args[0]) })
		},
	}, &cobra.Command{
		Use:   "delete NAME",
		Short: "delete an authorization policy",
		Args:  exactArgs(1, "one policy NAME"),
		RunE: func(cc *cobra.Command, args []string) error {
			return withPolicies(cc, f, func(ctx context.Context, c *policiesCmd) error { return c.delete(ctx, args[0]) })
		},
	})
	return cmd
}

// withPolicies connects to the management API and runs fn under --timeout.
func withPolicies(cmd *cobra.Command, f apiFlags, fn func(context.Context, *policiesCmd) error) error {
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
	return fn(ctx, &policiesCmd{f: f, pc: shoalv1.NewPolicyServiceClient(conn), stdout: cmd.OutOrStdout()})
}

// policiesCmd runs one policies subcommand.
type policiesCmd struct {
	f      apiFlags
	pc     shoalv1.PolicyServiceClient
	stdout io.Writer
}

func (c *policiesCmd) apply(ctx context.Context, files []string) error {
	ps, err := readPolicyFiles(files)
	if err != nil {
		return err
	}
	for _, p := range ps {
		result, err := c.applyOne(ctx, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "policy/%s %s\n", p.GetName(), result)
	}
	return nil
}

// applyOne creates p, or updates it (with the version read, so that a
// concurrent change fails rather than being overwritten) unless unchanged.
func (c *policiesCmd) applyOne(ctx context.Context, p *shoalv1.AuthorizationPolicy) (string, error) {
	want := proto.CloneOf(p)
	want.Version = ""
	cur, err := c.pc.GetPolicy(ctx, &shoalv1.GetPolicyRequest{Name: p.GetName()})
	if status.Code(err) == codes.NotFound {
		if _, err := c.pc.CreatePolicy(ctx, &shoalv1.CreatePolicyRequest{Policy: want}); err != nil {
			return "", c.f.apiError(err)
		}
		return "created", nil
	}
	if err != nil {
		return "", c.f.apiError(err)
	}
	have := proto.CloneOf(cur.GetPolicy())
	have.Version = ""
	if proto.Equal(want, have) {
		return "unchanged", nil
	}
	want.Version = cur.GetPolicy().GetVersion()
	if _, err := c.pc.UpdatePolicy(ctx, &shoalv1.UpdatePolicyRequest{Policy: want}); err != nil {
		if status.Code(err) == codes.Aborted {
			return "", fmt.Errorf("policy %q changed while it was being applied; apply again", p.GetName())
		}
		return "", c.f.apiError(err)
	}
	return "updated", nil
}

// readPolicyFiles parses and validates every file, so that nothing is
// written unless all are valid. Errors name the file.
func readPolicyFiles(files []string) ([]*shoalv1.AuthorizationPolicy, error) {
	files, err := expandDirs(files)
	if err != nil {
		return nil, err
	}
	var all []*shoalv1.AuthorizationPolicy
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		ps, err := policies.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "policies: "))
		}
		for _, p := range ps {
			if err := policies.Validate(p); err != nil {
				return nil, fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "policies: "))
			}
		}
		all = append(all, ps...)
	}
	return all, nil
}

func (c *policiesCmd) list(ctx context.Context) error {
	resp, err := c.pc.ListPolicies(ctx, &shoalv1.ListPoliciesRequest{})
	if err != nil {
		return c.f.apiError(err)
	}
	return writePolicies(c.stdout, c.f.output, resp.GetPolicies(), true)
}

func (c *policiesCmd) get(ctx context.Context, name string) error {
	resp, err := c.pc.GetPolicy(ctx, &shoalv1.GetPolicyRequest{Name: name})
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("policy %q not found", name)
	}
	if err != nil {
		return c.f.apiError(err)
	}
	return writePolicies(c.stdout, c.f.output, []*shoalv1.AuthorizationPolicy{resp.GetPolicy()}, false)
}

func (c *policiesCmd) delete(ctx context.Context, name string) error {
	_, err := c.pc.DeletePolicy(ctx, &shoalv1.DeletePolicyRequest{Name: name})
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("policy %q not found", name)
	}
	if err != nil {
		return c.f.apiError(err)
	}
	fmt.Fprintf(c.stdout, "policy/%s deleted\n", name)
	return nil
}

// writePolicies prints ps as a table, a YAML stream or JSON (a list when
// list is true), with proto field names so the output can be applied.
func writePolicies(w io.Writer, format string, ps []*shoalv1.AuthorizationPolicy, list bool) error {
	if format == "table" {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSERVICE\tRULES\tCALLERS\tVERSION")
		for _, p := range ps {
			var callers []string
			for _, r := range p.GetRules() {
				callers = append(callers, r.GetCallers()...)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", p.GetName(), p.GetService(), len(p.GetRules()), strings.Join(callers, ","), p.GetVersion())
		}
		return tw.Flush()
	}
	docs := make([]json.RawMessage, len(ps))
	for i, p := range ps {
		b, err := protoJSON.Marshal(p)
		if err != nil {
			return err
		}
		docs[i] = b
	}
	if format == "json" {
		var v any = docs
		if !list && len(docs) == 1 {
			v = docs[0]
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	for i, d := range docs {
		y, err := yaml.JSONToYAML(d)
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
