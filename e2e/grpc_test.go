package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/shoal-mesh/shoal/e2e/harness"
	"github.com/shoal-mesh/shoal/registry"
)

// grpcBackendEnv makes the e2e test binary a grpc-go backend instead
// (TestMain): it serves the gRPC health service on the address in it and
// names itself (SHOAL_E2E_GRPC_ID) in an x-backend response header, and the
// x-forwarded-client-cert it received (from an mTLS inbound sidecar) in
// x-seen-xfcc. A process of its own, so that it can be killed with kill -9.
const grpcBackendEnv = "SHOAL_E2E_GRPC_BACKEND"

// serveGRPCBackend runs the backend until the process is killed.
func serveGRPCBackend(addr string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	id := os.Getenv("SHOAL_E2E_GRPC_ID")
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		grpc.SetHeader(ctx, metadata.Pairs("x-backend", id, "x-seen-xfcc", strings.Join(md.Get("x-forwarded-client-cert"), ",")))
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	srv.Serve(l)
	os.Exit(0)
}

// Issue 19: kill -9 one of three grpc-go instances under steady unary gRPC
// load through a sidecar's --upstream port. Calls that were on the killed
// instance's connection, and connects to it until it is ejected, go to
// another instance: the route retries resets (as a gRPC mesh route that
// wants no failed call must: the sidecar cannot know whether a call that
// lost its connection reached the app; without reset, 1 or 2 calls in
// flight at the kill fail), connect failures are retried on another
// instance anyway. The client sees no failed call.
func TestGRPCKillOneOfThreeUnderLoad(t *testing.T) {
	t.Parallel()
	cp := harness.StartControlPlane(t)
	cli := cp.EtcdClient(t)
	var backends []*harness.Proc
	for i := range 3 {
		port := harness.FreePort(t)
		id := fmt.Sprintf("greeter-%d", i+1)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		backends = append(backends, harness.Start(t, os.Args[0], []string{grpcBackendEnv + "=" + addr, "SHOAL_E2E_GRPC_ID=" + id}))
		harness.Eventually(t, harness.DefaultTimeout, id+" listening", func() bool {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		ctx, cancel := context.WithTimeout(t.Context(), harness.DefaultTimeout)
		_, err := cli.Do(ctx, harness.PutInstance(t, registry.Instance{ID: id, Service: "greeter", Address: "127.0.0.1", Port: port, Protocol: "grpc"}))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	client := harness.StartSidecar(t, harness.SidecarOptions{CP: cp, Service: "client", InstanceID: "client-1",
		AppPort: harness.FreePort(t), NoRegister: true, Upstreams: []string{"greeter"}})
	route := "name: greeter\nhosts: [greeter]\nrules:\n  - destinations: [{service: greeter}]\n" +
		"    retry: {attempts: 2, retry_on: [reset, connect-failure, refused-stream, unavailable]}\n"
	file := filepath.Join(t.TempDir(), "route.yaml")
	if err := os.WriteFile(file, []byte(route), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := harness.Shoal(t, "routes", "apply", "-f", file, "--api", cp.API); code != 0 {
		t.Fatalf("shoal routes apply: exit %d: %s%s", code, out, errOut)
	}
	harness.Eventually(t, harness.DefaultTimeout, "the route", func() bool { return client.RoutesMention("greeter") })
	harness.Eventually(t, harness.DefaultTimeout, "3 routable instances", func() bool { return len(client.RoutableEndpoints("greeter")) == 3 })

	load := startGRPCLoad(t, client.Upstreams["greeter"], 4)
	load.waitCalls(t, 300)
	killedAt := time.Now()
	backends[0].Kill()
	load.waitCalls(t, 1000)
	r := load.stop()
	t.Logf("kill -9 of greeter-1: %d calls, %d failed, by instance %v, last answer from greeter-1 %s after the kill",
		r.calls, len(r.failures), r.by, r.last["greeter-1"].Sub(killedAt).Round(time.Millisecond))
	if len(r.failures) != 0 {
		t.Errorf("%d failed calls, want 0; first: %v", len(r.failures), r.failures[0])
	}
	if r.by["greeter-2"] == 0 || r.by["greeter-3"] == 0 {
		t.Errorf("calls by instance %v: the survivors must share the load", r.by)
	}
}

// grpcLoad makes unary health checks from workers over one client
// connection, each pacing its calls, until stopped.
type grpcLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	n      atomic.Int64
	mu     sync.Mutex
	r      grpcLoadResult
}

type grpcLoadResult struct {
	calls    int
	failures []error
	by       map[string]int
	last     map[string]time.Time
}

func startGRPCLoad(t *testing.T, addr string, workers int) *grpcLoad {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	l := &grpcLoad{cancel: cancel, r: grpcLoadResult{by: map[string]int{}, last: map[string]time.Time{}}}
	hc := healthpb.NewHealthClient(cc)
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				l.one(ctx, hc)
				time.Sleep(2 * time.Millisecond) // pacing, not synchronization
			}
		}()
	}
	t.Cleanup(func() { l.stop() })
	return l
}

func (l *grpcLoad) one(ctx context.Context, hc healthpb.HealthClient) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var md metadata.MD
	_, err := hc.Check(cctx, &healthpb.HealthCheckRequest{}, grpc.Header(&md))
	if ctx.Err() != nil {
		return // stopped: the call's outcome does not count
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.r.calls++
	if err != nil {
		l.r.failures = append(l.r.failures, err)
	} else if v := md.Get("x-backend"); len(v) == 1 {
		l.r.by[v[0]]++
		l.r.last[v[0]] = time.Now()
	}
	l.n.Add(1)
}

// waitCalls waits until n more calls completed.
func (l *grpcLoad) waitCalls(t *testing.T, n int64) {
	t.Helper()
	target := l.n.Load() + n
	harness.Eventually(t, harness.DefaultTimeout, fmt.Sprintf("%d more gRPC calls", n), func() bool { return l.n.Load() >= target })
}

func (l *grpcLoad) stop() grpcLoadResult {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r
}
