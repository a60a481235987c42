package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/controlplane/xds"
	"github.com/shoal-mesh/shoal/controlplane/xdsserver"
	"github.com/shoal-mesh/shoal/controlplane/xdsserver/xdsservertest"
	"github.com/shoal-mesh/shoal/e2e/harness"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

const xdsTestTimeout = 30 * time.Second

// nodeClient is e2e/nodexds/client.js: a @grpc/grpc-js-xds client.
type nodeClient struct {
	t     *testing.T
	stdin io.WriteCloser
	lines chan string
}

type nodeResult struct {
	IDs    []string `json:"ids"`
	Errors []string `json:"errors"`
}

func startNodeClient(t *testing.T, xdsAddr, target string) *nodeClient {
	t.Helper()
	dir, err := filepath.Abs("nodexds")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@grpc", "grpc-js-xds")); err != nil {
		harness.Unavailable(t, "e2e/nodexds/node_modules is missing: run `make node-deps` (npm ci in e2e/nodexds) to test @grpc/grpc-js-xds")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		harness.Unavailable(t, "node is not installed: the @grpc/grpc-js-xds test needs Node.js >= 20")
	}
	cmd := exec.Command(node, filepath.Join(dir, "client.js"), target)
	cmd.Env = append(os.Environ(), fmt.Sprintf(`GRPC_XDS_BOOTSTRAP_CONFIG={
		"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": "grpc-js-e2e", "cluster": "e2e", "locality": {"zone": "e2e"}}}`, xdsAddr))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &nodeClient{t: t, stdin: stdin, lines: make(chan string)}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		for range c.lines {
		}
		<-readDone
		cmd.Wait()
	})
	return c
}

// calls makes n sequential calls (with header x-user when user is set).
func (c *nodeClient) calls(n int, user string) nodeResult {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.stdin, "call %d %s\n", n, user); err != nil {
		c.t.Fatal(err)
	}
	select {
	case line, ok := <-c.lines:
		if !ok {
			c.t.Fatal("node client exited")
		}
		var r nodeResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			c.t.Fatalf("node client said %q: %v", line, err)
		}
		return r
	case <-time.After(xdsTestTimeout):
		c.t.Fatal("node client did not answer")
	}
	return nodeResult{}
}

func pollNode(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(xdsTestTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

func echoRoute(s shoalv1.Strategy) *shoalv1.Route {
	return &shoalv1.Route{Name: "echo", Hosts: []string{"echo"}, Rules: []*shoalv1.Rule{{
		Destinations: []*shoalv1.Destination{{Service: "echo"}},
		Strategy:     s,
		HashKey:      &shoalv1.HashKey{Key: &shoalv1.HashKey_Header{Header: "x-user"}},
	}}}
}

func countIDs(ids []string) map[string]int {
	m := map[string]int{}
	for _, id := range ids {
		m[id]++
	}
	return m
}

// TestNodeGRPCJSXDSClient runs @grpc/grpc-js-xds against the xDS server:
// round robin spreads evenly, least request and least loaded fall back (to
// round robin) without a NACK, ring hash on a header keeps a user on one backend, and a
// removed endpoint leaves the rotation.
func TestNodeGRPCJSXDSClient(t *testing.T) {
	eps := xdsservertest.StartBackends(t, "echo", 3)
	srv, addr := xdsservertest.StartServer(t)
	srv.Update(xds.Input{Endpoints: eps})
	c := startNodeClient(t, addr, "xds:///echo")

	pollNode(t, "every backend answered", func() bool { return len(countIDs(c.calls(10, "").IDs)) == 3 })
	r := c.calls(30, "")
	for _, ep := range eps {
		if n := countIDs(r.IDs)[ep.ID]; n < 9 || n > 11 || len(r.Errors) > 0 {
			t.Errorf("round robin: %s got %d of 30 calls (errors %v), want 10±1", ep.ID, n, r.Errors)
		}
	}

	srv.Update(xds.Input{Endpoints: eps, Routes: []*shoalv1.Route{echoRoute(shoalv1.Strategy_STRATEGY_LEAST_REQUEST)}})
	pollNode(t, "the least-request route is ACKed", func() bool { return ackedRoutes(t, srv, "gRPC Node") })
	if r := c.calls(30, ""); len(countIDs(r.IDs)) != 3 || len(r.Errors) > 0 {
		t.Errorf("least request (as round robin): got %v, errors %v", countIDs(r.IDs), r.Errors)
	}

	// least_loaded (issue 17) falls back as least request does: grpc-js has
	// no client_side_weighted_round_robin, and must not be sent it.
	srv.Update(xds.Input{Endpoints: eps, Routes: []*shoalv1.Route{echoRoute(shoalv1.Strategy_STRATEGY_LEAST_LOADED)}})
	pollNode(t, "the least-loaded route is ACKed", func() bool { return ackedRoutes(t, srv, "gRPC Node") })
	if r := c.calls(30, ""); len(countIDs(r.IDs)) != 3 || len(r.Errors) > 0 {
		t.Errorf("least loaded (as round robin): got %v, errors %v", countIDs(r.IDs), r.Errors)
	}

	// The route configuration now also carries an authorization policy on
	// echo (an RBAC override, optional: grpc-js has no RBAC filter and
	// must not reject the resource for it).
	srv.Update(xds.Input{Endpoints: eps, Routes: []*shoalv1.Route{echoRoute(shoalv1.Strategy_STRATEGY_RING_HASH)},
		Policies: []*shoalv1.AuthorizationPolicy{{Name: "echo", Service: "echo",
			Rules: []*shoalv1.AuthorizationRule{{Callers: []string{"ns/default/*"}}}}}})
	pollNode(t, "ring hash (with a policy on echo) is in force", func() bool {
		r := c.calls(10, "alice")
		return len(r.Errors) == 0 && len(countIDs(r.IDs)) == 1
	})
	backends := map[string]bool{}
	for i := range 10 {
		r := c.calls(5, fmt.Sprintf("user-%d", i))
		if got := countIDs(r.IDs); len(got) != 1 || len(r.Errors) > 0 {
			t.Fatalf("ring hash: user-%d went to %v (errors %v), want one backend", i, got, r.Errors)
		}
		backends[r.IDs[0]] = true
	}
	if len(backends) < 2 {
		t.Errorf("ring hash: 10 users all on %v", backends)
	}

	srv.Update(xds.Input{Endpoints: eps[:2]})
	pollNode(t, eps[2].ID+" left the rotation", func() bool {
		r := c.calls(10, "")
		return len(r.Errors) == 0 && countIDs(r.IDs)[eps[2].ID] == 0
	})
	for _, cl := range srv.Status() {
		for _, rs := range cl.GetResources() {
			if rs.GetNackError() != "" {
				t.Errorf("%s NACKed %s: %s", cl.GetUserAgent(), rs.GetTypeUrl(), rs.GetNackError())
			}
		}
	}
}

// ackedRoutes reports whether a client whose user agent starts with ua has
// ACKed everything it was sent.
func ackedRoutes(t *testing.T, srv *xdsserver.Server, ua string) bool {
	t.Helper()
	for _, cl := range srv.Status() {
		if !strings.HasPrefix(cl.GetUserAgent(), ua) {
			continue
		}
		for _, rs := range cl.GetResources() {
			if rs.GetNackError() != "" {
				t.Fatalf("%s NACKed %s: %s", cl.GetUserAgent(), rs.GetTypeUrl(), rs.GetNackError())
			}
			if rs.GetSentVersion() != rs.GetAckedVersion() {
				return false
			}
		}
		return true
	}
	return false
}
