//go:build !shoal_slim

package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// checkResult is one line of `shoal check`.
type checkResult struct {
	name string
	// ok is nil for a check that was not run.
	ok *bool
	// detail follows the name; lines are printed under it; hint on failure.
	detail string
	lines  []string
	hint   string
}

func pass(name, detail string) checkResult {
	t := true
	return checkResult{name: name, ok: &t, detail: detail}
}

func fail(name, detail, hint string, lines ...string) checkResult {
	f := false
	return checkResult{name: name, ok: &f, detail: detail, hint: hint, lines: lines}
}

func newCheckCmd() *cobra.Command {
	var f apiFlags
	var ackWithin time.Duration
	cmd := &cobra.Command{
		Use:   "check",
		Short: "diagnose the mesh: control plane, etcd, routes, xDS ACKs and NACKs, duplicate registrations",
		Long: "check asks the control plane's management API (--api) about the mesh, prints one line per\n" +
			"check (✔ passed, ✖ failed with a hint) and exits 1 if any check failed, like `linkerd check`.",
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.output = "table"
			if err := f.check(); err != nil {
				return err
			}
			results := runChecks(cmd.Context(), f, ackWithin, time.Now())
			if failed := printChecks(cmd.OutOrStdout(), results); failed > 0 {
				return fmt.Errorf("%d of %d checks failed", failed, len(results))
			}
			return nil
		},
	}
	fs := cmd.Flags()
	f.registerConn(fs)
	fs.DurationVar(&f.timeout, "timeout", 5*time.Second, "how long to wait for each answer of the management API")
	fs.DurationVar(&ackWithin, "ack-within", 30*time.Second, "how long an xDS client may take to ACK the last config pushed to it")
	return cmd
}

// runChecks asks the management API and evaluates the answers.
func runChecks(ctx context.Context, f apiFlags, ackWithin time.Duration, now time.Time) []checkResult {
	const reach = "control plane reachable"
	conn, err := f.dial()
	if err != nil {
		return []checkResult{fail(reach, err.Error(), "check --api")}
	}
	defer conn.Close()
	sctx, cancel := context.WithTimeout(ctx, f.timeout)
	st, err := shoalv1.NewMeshServiceClient(conn).Status(sctx, &shoalv1.StatusRequest{})
	cancel()
	if err != nil {
		return []checkResult{fail(reach, f.apiError(err).Error(), "start `shoal controlplane`, or point --api at its --api-listen (behind kubectl port-forward: the forwarded port)")}
	}
	results := []checkResult{pass(reach, fmt.Sprintf("%s at %s, shoal %s", st.GetControlPlaneId(), f.addr, st.GetControlPlaneVersion()))}

	// The route store reads etcd on every List: an answer means etcd
	// answers the control plane.
	ectx, cancel := context.WithTimeout(ctx, f.timeout)
	_, err = shoalv1.NewRouteServiceClient(conn).ListRoutes(ectx, &shoalv1.ListRoutesRequest{})
	cancel()
	if err != nil {
		results = append(results, fail("etcd healthy", f.apiError(err).Error(), "the control plane cannot read etcd: check --etcd-endpoints (or its embedded etcd's --data-dir) and its log"))
	} else {
		results = append(results, pass("etcd healthy", "the control plane reads and lists routes"))
	}
	results = append(results, evaluateStatus(st, ackWithin, now)...)
	return append(results, checkDoors(f, st))
}

// checkDoors fails for every listener anyone who reaches it may use: the
// ones the control plane reports (plain beyond loopback under --insecure),
// and the management API itself when this command reached it beyond
// loopback in plain text.
func checkDoors(f apiFlags, st *shoalv1.StatusResponse) checkResult {
	doors := st.GetOpenDoors()
	if f.plain() && !isLoopbackAddr(f.addr) {
		doors = append([]string{fmt.Sprintf("--api-listen: the management API at %s answered in plain text without credentials (anyone who reaches it could rewrite routes)", f.addr)}, doors...)
	}
	if len(doors) > 0 {
		return fail("no open doors", fmt.Sprintf("%d listeners beyond loopback without TLS and authentication", len(doors)),
			"bind them to 127.0.0.1, or drop --insecure and the =off auth flags (--api-auth, --xds-auth, --etcd-tls, --gossip-auth) so they authenticate", doors...)
	}
	return pass("no open doors", "every listener beyond loopback authenticates its callers")
}

// evaluateStatus turns a Status answer into the remaining checks.
func evaluateStatus(st *shoalv1.StatusResponse, ackWithin time.Duration, now time.Time) []checkResult {
	var out []checkResult
	if st.GetReady() {
		out = append(out, pass("control plane ready", "first read of etcd done, serving xDS"))
	} else {
		out = append(out, fail("control plane ready", "its first read of etcd is not done", "wait a few seconds; if it stays so, check the control plane's log for etcd errors"))
	}
	out = append(out, checkRoutes(st), checkACKs(st, ackWithin, now), checkNACKs(st), checkDuplicates(st), checkMembers(st))
	return append(out, checkResult{name: "clock skew", detail: "not checked: no workload tokens in this version"})
}

func checkRoutes(st *shoalv1.StatusResponse) checkResult {
	var bad []string
	for _, r := range st.GetRoutes() {
		if !r.GetAccepted() {
			bad = append(bad, fmt.Sprintf("route %q: %s", r.GetName(), oneLine(r.GetError(), 200)))
		}
	}
	if len(bad) > 0 {
		return fail("routes served", fmt.Sprintf("%d of %d routes are not served", len(bad), len(st.GetRoutes())), "fix the route and apply it again (shoal routes get NAME)", bad...)
	}
	return pass("routes served", fmt.Sprintf("%d routes", len(st.GetRoutes())))
}

// checkACKs fails for a client that has not ACKed the last version pushed
// to it within ackWithin (a NACK is checkNACKs' business).
func checkACKs(st *shoalv1.StatusResponse, ackWithin time.Duration, now time.Time) checkResult {
	var late []string
	for _, c := range st.GetClients() {
		if c.GetConnectedAt() != nil && now.Sub(c.GetConnectedAt().AsTime()) < ackWithin {
			continue // just connected
		}
		for _, r := range c.GetResources() {
			sent := r.GetSentVersion()
			if sent == "" || sent == r.GetAckedVersion() || sent == r.GetNackedVersion() {
				continue
			}
			if t := r.GetLastAckTime(); t != nil && now.Sub(t.AsTime()) < ackWithin {
				continue
			}
			late = append(late, fmt.Sprintf("%s %s: sent %s, ACKed %s", c.GetNodeId(), shortType(r.GetTypeUrl()), short(sent), short(r.GetAckedVersion())))
		}
	}
	if len(late) > 0 {
		return fail("xDS clients ACKed", fmt.Sprintf("%d resource types not ACKed within %v", len(late), ackWithin),
			"a proxy that does not answer pushes is stuck or overloaded: check its log and /config_dump on its admin port", late...)
	}
	return pass("xDS clients ACKed", fmt.Sprintf("%d clients up to date", len(st.GetClients())))
}

// checkNACKs fails for a client whose latest push it rejected.
func checkNACKs(st *shoalv1.StatusResponse) checkResult {
	var nacks []string
	for _, c := range st.GetClients() {
		for _, r := range c.GetResources() {
			if v := r.GetNackedVersion(); v != "" && v == r.GetSentVersion() && v != r.GetAckedVersion() {
				nacks = append(nacks, fmt.Sprintf("%s %s version %s: %s", c.GetNodeId(), shortType(r.GetTypeUrl()), short(v), oneLine(r.GetNackError(), 200)))
			}
		}
	}
	if len(nacks) > 0 {
		return fail("no NACKs", fmt.Sprintf("%d clients reject their current config (they keep the last good one)", len(nacks)),
			"the error names what the proxy refused; fix the route or registration it comes from", nacks...)
	}
	return pass("no NACKs", "every client accepts its current config")
}

func checkDuplicates(st *shoalv1.StatusResponse) checkResult {
	var lines []string
	for _, d := range st.GetDuplicates() {
		lines = append(lines, fmt.Sprintf("%s %s: %s (served: %s)", d.GetService(), d.GetAddress(), strings.Join(d.GetInstanceIds(), ", "), d.GetKeptInstanceId()))
	}
	if len(lines) > 0 {
		return fail("no duplicate registrations", fmt.Sprintf("addresses registered more than once: %d", len(lines)),
			"register each app once: run its sidecar with --no-register when the app registers itself (the npm package)", lines...)
	}
	return pass("no duplicate registrations", "each address registered once")
}

func checkMembers(st *shoalv1.StatusResponse) checkResult {
	var bad []string
	for _, m := range st.GetMembers() {
		if s := m.GetState(); s == "suspect" || s == "dead" {
			bad = append(bad, fmt.Sprintf("%s %s (%s): %s", m.GetRole(), m.GetName(), m.GetAddress(), s))
		}
	}
	if len(bad) > 0 {
		return fail("gossip members alive", fmt.Sprintf("%d of %d members suspect or dead", len(bad), len(st.GetMembers())),
			"a dead member's instances are not routed to; if its host is gone for good it is dropped after a while", bad...)
	}
	return pass("gossip members alive", fmt.Sprintf("%d members", len(st.GetMembers())))
}

// printChecks writes one line per check and returns how many failed.
func printChecks(w io.Writer, results []checkResult) int {
	failed := 0
	for _, r := range results {
		mark := "○"
		switch {
		case r.ok == nil:
		case *r.ok:
			mark = "✔"
		default:
			mark = "✖"
			failed++
		}
		fmt.Fprintf(w, "%s %s: %s\n", mark, r.name, r.detail)
		for _, l := range r.lines {
			fmt.Fprintf(w, "    %s\n", l)
		}
		if r.ok != nil && !*r.ok && r.hint != "" {
			fmt.Fprintf(w, "    hint: %s\n", r.hint)
		}
	}
	if failed == 0 {
		fmt.Fprintln(w, "\nStatus check results are ✔")
	} else {
		fmt.Fprintf(w, "\nStatus check results are ✖ (%d failed)\n", failed)
	}
	return failed
}
