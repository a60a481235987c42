//go:build !shoal_slim

package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

func newStatusCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show the control plane's xDS clients, routes and gossip members",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			st, err := shoalv1.NewMeshServiceClient(conn).Status(ctx, &shoalv1.StatusRequest{})
			if err != nil {
				return f.apiError(err)
			}
			if f.output != "table" {
				return writeProto(cmd.OutOrStdout(), f.output, st)
			}
			return printStatus(cmd.OutOrStdout(), st)
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func printStatus(w io.Writer, st *shoalv1.StatusResponse) error {
	ready := "ready"
	if !st.GetReady() {
		ready = "NOT READY (first read of etcd not done)"
	}
	fmt.Fprintf(w, "control plane %s (shoal %s): %s\n\n", st.GetControlPlaneId(), st.GetControlPlaneVersion(), ready)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "XDS CLIENT\tAGENT\tSTREAM\tTYPE\tSENT\tACKED\tNACKED\tLAST ACK\n")
	for _, c := range st.GetClients() {
		stream := "sotw"
		if c.GetDelta() {
			stream = "delta"
		}
		for i, r := range c.GetResources() {
			node, agent, strm := c.GetNodeId(), c.GetUserAgent(), stream
			if i > 0 {
				node, agent, strm = "", "", ""
			}
			nacked := "-"
			if r.GetNackedVersion() != "" || r.GetNackError() != "" {
				nacked = r.GetNackedVersion() + ": " + oneLine(r.GetNackError(), 80)
			}
			lastAck := "-"
			if r.GetLastAckTime() != nil {
				lastAck = time.Since(r.GetLastAckTime().AsTime()).Round(time.Second).String() + " ago"
			}
			sent := short(r.GetSentVersion())
			if r.GetSentVersion() == "" && r.GetResumedResources() > 0 {
				// A delta client that resumed up to date: nothing to send.
				sent = fmt.Sprintf("resumed(%d)", r.GetResumedResources())
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", node, agent, strm, shortType(r.GetTypeUrl()),
				sent, short(r.GetAckedVersion()), nacked, lastAck)
		}
	}
	if len(st.GetClients()) == 0 {
		fmt.Fprintln(tw, "(none connected)")
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ROUTE\tVERSION\tSERVED\tERROR\n")
	for _, r := range st.GetRoutes() {
		served, errText := "yes", "-"
		if !r.GetAccepted() {
			served, errText = "NO", oneLine(r.GetError(), 400)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.GetName(), r.GetVersion(), served, errText)
	}
	tw.Flush()
	if len(st.GetDuplicates()) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "DUPLICATE ADDRESS\tSERVICE\tINSTANCES\tSERVED\n")
		for _, d := range st.GetDuplicates() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.GetAddress(), d.GetService(), strings.Join(d.GetInstanceIds(), ","), d.GetKeptInstanceId())
		}
		tw.Flush()
	}
	if len(st.GetIdentities()) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "IDENTITY\tINSTANCE\tSERIAL\tEXPIRES\tPEER\n")
		for _, id := range st.GetIdentities() {
			inst := id.GetInstance()
			if inst == "" {
				inst = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\tin %s\t%s\n", id.GetSpiffeId(), inst, short(id.GetSerial()),
				time.Until(id.GetExpiresAt().AsTime()).Round(time.Second), id.GetPeer())
		}
		tw.Flush()
	}
	if len(st.GetMembers()) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "MEMBER\tROLE\tADDRESS\tSTATE\tAPP\tINSTANCES\n")
		for _, m := range st.GetMembers() {
			app := "healthy"
			if !m.GetAppHealthy() {
				app = "unhealthy"
			}
			if m.GetRole() != "sidecar" {
				app = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.GetName(), m.GetRole(), m.GetAddress(), m.GetState(), app, strings.Join(m.GetInstances(), ","))
		}
		tw.Flush()
	}
	return nil
}

func shortType(url string) string {
	switch {
	case strings.HasSuffix(url, "Listener"):
		return "LDS"
	case strings.HasSuffix(url, "RouteConfiguration"):
		return "RDS"
	case strings.HasSuffix(url, "ClusterLoadAssignment"):
		return "EDS"
	case strings.HasSuffix(url, "Cluster"):
		return "CDS"
	}
	return url
}

func short(v string) string {
	if len(v) > 12 {
		return v[:12]
	}
	if v == "" {
		return "-"
	}
	return v
}
