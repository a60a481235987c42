//go:build !shoal_slim

package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

func newTopCmd() *cobra.Command {
	var f apiFlags
	var interval time.Duration
	var once bool
	cmd := &cobra.Command{
		Use:   "top",
		Short: "show live traffic per service, instance and caller (the dashboard in the terminal)",
		Long: `top shows, refreshed every --interval, each service with its instances, their
health and the share of requests each got per strategy over the last minute, and
the edges between services (requests per second, success rate, mean latency), as
the proxies report them to the control plane over LRS. --once prints one frame.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			if interval <= 0 {
				return usageErrorf("--interval %v: must be positive", interval)
			}
			conn, err := f.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			w := cmd.OutOrStdout()
			for {
				frame, err := topFrame(cmd.Context(), conn, f.timeout)
				if err != nil {
					return f.apiError(err)
				}
				if once {
					_, err := io.WriteString(w, frame)
					return err
				}
				// Clear the screen and home the cursor, then draw.
				fmt.Fprint(w, "\x1b[H\x1b[2J"+frame)
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(interval):
				}
			}
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "refresh period")
	cmd.Flags().BoolVar(&once, "once", false, "print one frame and exit")
	return cmd
}

// topFrame reads the API once and renders one screen.
func topFrame(ctx context.Context, conn *grpc.ClientConn, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr, err := shoalv1.NewMeshServiceClient(conn).Traffic(ctx, &shoalv1.TrafficRequest{})
	if err != nil {
		return "", err
	}
	reg := shoalv1.NewRegistryServiceClient(conn)
	svcs, err := reg.ListServices(ctx, &shoalv1.ListServicesRequest{})
	if err != nil {
		return "", err
	}
	insts, err := reg.ListInstances(ctx, &shoalv1.ListInstancesRequest{})
	if err != nil {
		return "", err
	}
	var b strings.Builder
	printTop(&b, tr, svcs.GetServices(), insts.GetInstances(), time.Now())
	return b.String(), nil
}

func printTop(w io.Writer, tr *shoalv1.TrafficResponse, svcs []*shoalv1.Service, insts []*shoalv1.Instance, now time.Time) {
	fmt.Fprintf(w, "shoal top — %s — traffic over the last %v\n\n", now.Format("15:04:05"), tr.GetWindow().AsDuration())
	// Requests per service, strategy and address, summed over sources.
	type tally struct {
		total uint64
		by    map[string]uint64
	}
	shares := map[string]map[string]*tally{}
	for _, ep := range tr.GetEndpoints() {
		s := shares[ep.GetService()]
		if s == nil {
			s = map[string]*tally{}
			shares[ep.GetService()] = s
		}
		t := s[ep.GetStrategy()]
		if t == nil {
			t = &tally{by: map[string]uint64{}}
			s[ep.GetStrategy()] = t
		}
		t.total += ep.GetRequests()
		t.by[ep.GetAddress()] += ep.GetRequests()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, svc := range svcs {
		strategies := make([]string, 0, len(shares[svc.GetName()]))
		for s := range shares[svc.GetName()] {
			strategies = append(strategies, s)
		}
		slices.Sort(strategies)
		fmt.Fprintf(tw, "%s (%d/%d healthy)\tADDRESS\tHEALTH", strings.ToUpper(svc.GetName()), svc.GetHealthyInstances(), svc.GetInstances())
		for _, s := range strategies {
			fmt.Fprintf(tw, "\t%s", strings.ToUpper(s))
		}
		fmt.Fprintln(tw)
		for _, in := range insts {
			if in.GetService() != svc.GetName() {
				continue
			}
			addr := fmt.Sprintf("%s:%d", in.GetAddress(), in.GetPort())
			fmt.Fprintf(tw, "  %s\t%s\t%s", in.GetId(), addr, healthWord(in.GetHealth()))
			for _, s := range strategies {
				t := shares[svc.GetName()][s]
				fmt.Fprintf(tw, "\t%s %5.1f%% %d", bar(t.by[addr], t.total, 10), pctOf(t.by[addr], t.total), t.by[addr])
			}
			fmt.Fprintln(tw)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if len(tr.GetEdges()) == 0 {
		fmt.Fprintln(w, "no traffic reported in the last minute")
		return
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tDESTINATION\tRPS\tSUCCESS\tMEAN LATENCY\tIN FLIGHT")
	for _, e := range tr.GetEdges() {
		lat := "-"
		if e.GetMeanLatencyMs() > 0 {
			lat = fmt.Sprintf("%.1fms", e.GetMeanLatencyMs())
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.2f%%\t%s\t%d\n", e.GetSource(), e.GetDestination(), e.GetRequestsPerSecond(),
			100*e.GetSuccessRate(), lat, e.GetInProgress())
	}
	tw.Flush()
}

func pctOf(n, total uint64) float64 {
	if total == 0 {
		return 0
	}
	return 100 * float64(n) / float64(total)
}

// bar draws n/total as a bar of width cells.
func bar(n, total uint64, width int) string {
	full := 0
	if total > 0 {
		full = int(float64(width)*float64(n)/float64(total) + 0.5)
	}
	return "[" + strings.Repeat("#", full) + strings.Repeat(".", width-full) + "]"
}

func healthWord(h shoalv1.HealthStatus) string {
	s := strings.ToLower(strings.TrimPrefix(h.String(), "HEALTH_STATUS_"))
	if s == "unspecified" {
		return "registered"
	}
	return s
}
