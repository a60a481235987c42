//go:build !shoal_slim

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-mesh/shoal/registry/gossip/keyadmin"
)

const gossipUsage = `  shoal gossip keys generate                       print a new random key (base64)
  shoal gossip keys list --admin ADDR[,ADDR...]     show each member's key fingerprints
  shoal gossip keys install|use|remove KEY --admin ADDR[,ADDR...] [--auth-key K]
                                                   apply one rotation step to every member

Rotation (each step must succeed on every member before the next; then no
packet is unreadable and no member is suspected):
  shoal gossip keys install NEW --admin ... --auth-key OLD   # all members decrypt NEW too
  shoal gossip keys use NEW --admin ...       # all members encrypt with NEW
  shoal gossip keys remove OLD --admin ...    # OLD is gone
Then change --gossip-key to NEW wherever members are started: a member
restarted with OLD would no longer join. KEY "-" reads the key from stdin.
ADDR is a member's --admin-listen (sidecar, gateway or control plane).

Members only accept a step signed with a key they already have: install
needs --auth-key (or $SHOAL_GOSSIP_AUTH_KEY), a key the members hold today;
use and remove are signed with KEY itself, which the members hold by then.
`

// keysFlags are the flags of every `shoal gossip keys` command.
type keysFlags struct {
	admins, output, authKey string
	timeout                 time.Duration
}

func newGossipCmd() *cobra.Command {
	gossip := groupCmd("gossip", "rotate the gossip key: keys install|use|remove KEY --admin ADDR,...; keys list; keys generate")
	keys := groupCmd("keys", "rotate the gossip encryption key on every member")
	keys.Long = gossipUsage
	var f keysFlags
	pf := keys.PersistentFlags()
	pf.StringVar(&f.admins, "admin", "", "comma-separated admin addresses of the members (host:port)")
	pf.DurationVar(&f.timeout, "timeout", 5*time.Second, "how long to wait for each member")
	pf.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	pf.StringVar(&f.authKey, "auth-key", os.Getenv("SHOAL_GOSSIP_AUTH_KEY"), "base64 key the members already have, to sign the step (default $SHOAL_GOSSIP_AUTH_KEY; use and remove default to KEY)")
	keys.AddCommand(&cobra.Command{
		Use:   "generate",
		Short: "print a new random key (base64)",
		Args:  exactArgs(0, "no arguments"),
		RunE:  func(cmd *cobra.Command, _ []string) error { return generateKey(cmd.OutOrStdout()) },
	}, &cobra.Command{
		Use:   "list --admin ADDR[,ADDR...]",
		Short: "show each member's key fingerprints",
		Args:  exactArgs(0, "no arguments"),
		RunE:  func(cmd *cobra.Command, _ []string) error { return runKeyStep(cmd, f, nil) },
	})
	for _, op := range []struct{ name, short string }{
		{keyadmin.OpInstall, "make every member decrypt with KEY too (signed with --auth-key)"},
		{keyadmin.OpUse, "make every member encrypt with KEY"},
		{keyadmin.OpRemove, "make every member forget KEY"},
	} {
		keys.AddCommand(&cobra.Command{
			Use:   op.name + " KEY --admin ADDR[,ADDR...]",
			Short: op.short,
			Long:  gossipUsage,
			Args:  exactArgs(1, "one KEY argument (- reads it from stdin)"),
			RunE: func(cmd *cobra.Command, args []string) error {
				req, err := keyRequest(op.name, args[0])
				if err != nil {
					return err
				}
				return runKeyStep(cmd, f, req)
			},
		})
	}
	gossip.AddCommand(keys)
	return gossip
}

// runKeyStep sends req (nil: list) to every member and prints the answers.
func runKeyStep(cmd *cobra.Command, f keysFlags, req *keyadmin.Request) error {
	if f.output != "table" && f.output != "json" {
		return usageErrorf("--output %q: want table or json", f.output)
	}
	members := splitList(f.admins)
	if len(members) == 0 {
		return usageErrorf("--admin: at least one member's admin address is required")
	}
	for _, m := range members {
		if err := checkAdminAddr("--admin", m); err != nil {
			return err
		}
	}
	var sign []byte
	if req != nil {
		var err error
		if sign, err = signingKey(req, f.authKey); err != nil {
			return err
		}
	}
	results := applyKeyStep(cmd.Context(), members, req, sign, f.timeout)
	if err := printKeyResults(cmd.OutOrStdout(), f.output, results); err != nil {
		return err
	}
	failed := 0
	for _, r := range results {
		if r.Err != "" {
			failed++
		}
	}
	if failed > 0 {
		if req == nil {
			return fmt.Errorf("list failed on %d of %d members", failed, len(results))
		}
		return fmt.Errorf("%s failed on %d of %d members; do not start the next step", req.Op, failed, len(results))
	}
	return nil
}

func generateKey(stdout io.Writer) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(key))
	return nil
}

// keyRequest returns the POST body for op with key ("-": read from stdin).
func keyRequest(op, key string) (*keyadmin.Request, error) {
	if key == "-" {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<10))
		if err != nil {
			return nil, fmt.Errorf("reading the key from stdin: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	if _, err := keyadmin.ParseKey(key); err != nil {
		return nil, err
	}
	return &keyadmin.Request{Op: op, Key: key}, nil
}

// signingKey is the key a step is signed with: --auth-key when given, else
// the step's own key for use and remove (installed by then); install needs
// --auth-key, since its key is not installed yet.
func signingKey(req *keyadmin.Request, authKey string) ([]byte, error) {
	if authKey != "" {
		k, err := keyadmin.ParseKey(strings.TrimSpace(authKey))
		if err != nil {
			return nil, fmt.Errorf("--auth-key: %w", err)
		}
		return k, nil
	}
	if req.Op == keyadmin.OpInstall {
		return nil, errors.New("install needs --auth-key (or $SHOAL_GOSSIP_AUTH_KEY): a key the members already have, e.g. the current --gossip-key; members refuse unsigned changes")
	}
	return keyadmin.ParseKey(req.Key)
}

// keyResult is one member's answer.
type keyResult struct {
	Admin string         `json:"admin"`
	Keys  []keyadmin.Key `json:"keys,omitempty"`
	Err   string         `json:"error,omitempty"`
}

// applyKeyStep sends req (nil: list) to every member concurrently and
// returns the answers in the members' order.
func applyKeyStep(ctx context.Context, members []string, req *keyadmin.Request, sign []byte, timeout time.Duration) []keyResult {
	out := make([]keyResult, len(members))
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var wg sync.WaitGroup
	for i, addr := range members {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			out[i] = keyCall(rctx, client, addr, req, sign)
		})
	}
	wg.Wait()
	return out
}

func keyCall(ctx context.Context, client *http.Client, addr string, req *keyadmin.Request, sign []byte) keyResult {
	res := keyResult{Admin: addr}
	url := addr
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	url = strings.TrimSuffix(url, "/") + keyadmin.Path
	method, body := http.MethodGet, []byte(nil)
	if req != nil {
		method = http.MethodPost
		body, _ = json.Marshal(req) // a Request of two strings always marshals
	}
	hreq, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		res.Err = err.Error()
		return res
	}
	hreq.Header.Set("Content-Type", "application/json")
	if req != nil {
		hreq.Header.Set(keyadmin.AuthHeader, keyadmin.Sign(sign, body, time.Now()))
	}
	resp, err := client.Do(hreq)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	defer resp.Body.Close()
	if (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) &&
		strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		// The admin port's guard: the member is beyond loopback.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		res.Err = fmt.Sprintf("%s: %s: %s (reach the admin port from loopback, e.g. kubectl port-forward)", url, resp.Status, strings.TrimSpace(string(b)))
		return res
	}
	var kr keyadmin.Response
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&kr); err != nil {
		res.Err = fmt.Sprintf("%s: %s (not a shoal admin endpoint?)", url, resp.Status)
		return res
	}
	res.Keys = kr.Keys
	if resp.StatusCode != http.StatusOK {
		res.Err = fmt.Sprintf("%s: %s", resp.Status, kr.Error)
	}
	return res
}

func printKeyResults(w io.Writer, output string, results []keyResult) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER ADMIN\tRESULT\tKEYS (* primary)")
	for _, r := range results {
		result := "ok"
		if r.Err != "" {
			result = "FAILED: " + oneLine(r.Err, 100)
		}
		var keys []string
		for _, k := range r.Keys {
			if k.Primary {
				keys = append(keys, k.Fingerprint+"*")
			} else {
				keys = append(keys, k.Fingerprint)
			}
		}
		if len(keys) == 0 {
			keys = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Admin, result, strings.Join(keys, " "))
	}
	return tw.Flush()
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}
