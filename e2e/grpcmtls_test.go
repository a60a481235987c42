package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/xds" // the xds:/// resolver and server, reading GRPC_XDS_BOOTSTRAP

	"github.com/shoal-mesh/shoal/e2e/harness"
	"github.com/shoal-mesh/shoal/registry"
)

// grpcXDSClientEnv makes the e2e test binary a grpc-go proxyless client
// instead (TestMain): it dials the target in it with xDS credentials
// (security config from the control plane, gRFC A29; plain text where the
// control plane sends none) and the bootstrap in GRPC_XDS_BOOTSTRAP, calls
// the gRPC health service until a call succeeds, an error matches
// SHOAL_E2E_GRPC_WANT_ERR or SHOAL_E2E_GRPC_FOR passes, and prints one
// grpcXDSResult as JSON. A process of its own: grpc-go's xDS client and
// bootstrap are per process.
const grpcXDSClientEnv = "SHOAL_E2E_GRPC_XDS_CLIENT"

// grpcXDSServerEnv makes the e2e test binary an xDS-enabled grpc-go server
// (gRFC A36) instead: it serves the gRPC health service on the address in
// it with xDS server credentials, its listener (and mTLS config) from the
// control plane through GRPC_XDS_BOOTSTRAP, and answers with x-backend
// (SHOAL_E2E_GRPC_ID) and x-seen-peer, the caller certificate's URI SAN.
const grpcXDSServerEnv = "SHOAL_E2E_GRPC_XDS_SERVER"

func serveGRPCXDSServer(addr string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		fail(err)
	}
	id := os.Getenv("SHOAL_E2E_GRPC_ID")
	srv, err := xds.NewGRPCServer(grpc.Creds(creds), grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		caller := ""
		if p, ok := peer.FromContext(ctx); ok {
			caller = certURI(p.AuthInfo)
		}
		grpc.SetHeader(ctx, metadata.Pairs("x-backend", id, "x-seen-peer", caller))
		return h(ctx, req)
	}))
	if err != nil {
		fail(err)
	}
	healthpb.RegisterHealthServer(srv, health.NewServer())
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fail(err)
	}
	srv.Serve(l)
	os.Exit(0)
}

// certURI is the URI SAN of the peer's certificate, "" without TLS.
func certURI(ai credentials.AuthInfo) string {
	ti, ok := ai.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 || len(ti.State.PeerCertificates[0].URIs) == 0 {
		return ""
	}
	return ti.State.PeerCertificates[0].URIs[0].String()
}

type grpcXDSResult struct {
	OK       bool   `json:"ok"`
	Calls    int    `json:"calls"`
	Backend  string `json:"backend"`
	XFCC     string `json:"xfcc"`      // what the backend app received
	SeenPeer string `json:"seen_peer"` // the client identity an xDS server saw
	PeerURI  string `json:"peer_uri"`  // the server certificate's URI SAN
	LastErr  string `json:"last_err"`
	TimedOut bool   `json:"timed_out"`
}

func runGRPCXDSClient(target string) {
	res := grpcXDSResult{}
	defer func() {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
		os.Exit(0)
	}()
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		res.LastErr = err.Error()
		return
	}
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		res.LastErr = err.Error()
		return
	}
	defer cc.Close()
	var want *regexp.Regexp
	if s := os.Getenv("SHOAL_E2E_GRPC_WANT_ERR"); s != "" {
		want = regexp.MustCompile(s)
	}
	d, err := time.ParseDuration(os.Getenv("SHOAL_E2E_GRPC_FOR"))
	if err != nil {
		d = harness.DefaultTimeout
	}
	deadline := time.Now().Add(d)
	hc := healthpb.NewHealthClient(cc)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var md metadata.MD
		var p peer.Peer
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&md), grpc.Peer(&p))
		cancel()
		res.Calls++
		if err == nil {
			res.OK = true
			res.Backend = strings.Join(md.Get("x-backend"), ",")
			res.XFCC = strings.Join(md.Get("x-seen-xfcc"), ",")
			res.SeenPeer = strings.Join(md.Get("x-seen-peer"), ",")
			res.PeerURI = certURI(p.AuthInfo)
			return
		}
		res.LastErr = err.Error()
		if want != nil && want.MatchString(res.LastErr) {
			return
		}
		time.Sleep(100 * time.Millisecond) // pacing between attempts, not synchronization
	}
	res.TimedOut = true
}

// runProxylessClient runs the grpc-go client process against target with
// the bootstrap file and returns its result.
func runProxylessClient(t *testing.T, bootstrap, target, wantErr string, d time.Duration) grpcXDSResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d+harness.DefaultTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), grpcXDSClientEnv+"="+target, "GRPC_XDS_BOOTSTRAP="+bootstrap,
		"SHOAL_E2E_GRPC_WANT_ERR="+wantErr, "SHOAL_E2E_GRPC_FOR="+d.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("grpc-go client: %v\n%s", err, stderr.String())
	}
	var res grpcXDSResult
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("grpc-go client printed %q: %v\n%s", out, err, stderr.String())
	}
	return res
}

// Issue 13 (proxyless gRPC) and issue 14 (xDS for proxyless clients): a
// grpc-go client with xDS credentials takes its identity from the files
// `shoal identity fetch` keeps fresh, subscribes to xDS over mTLS with it
// (--xds-auth=required binds the stream to its service), and calls two
// mTLS-only backends: greeter, a grpc-go app behind a sidecar with an
// identity (the app sees the caller in XFCC), and echo, an xDS-enabled
// grpc-go server (gRFC A36) that gets its listener and mTLS config from
// the control plane and its certificate from `shoal identity fetch` too
// (it sees the caller's certificate). The control plane sends the client
// gRPC's security config (certificate provider instance "shoal", the
// backend's SPIFFE ID as the required SAN). A client whose bootstrap has
// no certificate provider, one whose node claims another service and one
// whose certificate comes from another CA get no answer.
func TestProxylessGRPCWithMTLS(t *testing.T) {
	t.Parallel()
	cp := harness.StartControlPlane(t, "--xds-auth=required")
	tokDir := t.TempDir()
	fetch := func(service string) (dir, bootstrap string) {
		dir = t.TempDir()
		bootstrap = filepath.Join(dir, "bootstrap.json")
		harness.Start(t, harness.Binary(t), nil, "identity", "fetch", "--xds", cp.XDS,
			"--join-token-file", createToken(t, cp, tokDir, service), "--out", dir, "--grpc-bootstrap", bootstrap)
		harness.Eventually(t, harness.DefaultTimeout, service+"'s gRPC bootstrap", func() bool {
			_, err := os.Stat(bootstrap)
			return err == nil
		})
		return dir, bootstrap
	}

	// greeter: a grpc-go backend behind a sidecar with an identity.
	appPort := harness.FreePort(t)
	appAddr := fmt.Sprintf("127.0.0.1:%d", appPort)
	harness.Start(t, os.Args[0], []string{grpcBackendEnv + "=" + appAddr, "SHOAL_E2E_GRPC_ID=greeter-1"})
	harness.StartSidecar(t, harness.SidecarOptions{
		CP: cp, Service: "greeter", InstanceID: "greeter-1", AppPort: appPort,
		Extra: []string{"--listen", harness.FreeAddr(t), "--app-protocol", "grpc", "--health-path=",
			"--join-token-file", createToken(t, cp, tokDir, "greeter")},
	})

	// echo: an xDS-enabled grpc-go server with its own identity,
	// registered as an mTLS gRPC endpoint.
	_, echoBootstrap := fetch("echo")
	echoPort := harness.FreePort(t)
	harness.Start(t, os.Args[0], []string{grpcXDSServerEnv + "=" + fmt.Sprintf("127.0.0.1:%d", echoPort),
		"SHOAL_E2E_GRPC_ID=echo-1", "GRPC_XDS_BOOTSTRAP=" + echoBootstrap})
	ctx, cancel := context.WithTimeout(t.Context(), harness.DefaultTimeout)
	_, err := cp.EtcdClient(t).Do(ctx, harness.PutInstance(t, registry.Instance{
		ID: "echo-1", Service: "echo", Address: "127.0.0.1", Port: echoPort, Protocol: registry.ProtocolGRPC, TLS: registry.TLSMutual,
	}))
	cancel()
	if err != nil {
		t.Fatal(err)
	}

	// web: a proxyless client.
	dir, bootstrap := fetch("web")

	t.Run("an xDS-enabled gRPC server takes its mTLS config from the control plane and sees the client's identity", func(t *testing.T) {
		res := runProxylessClient(t, bootstrap, "xds:///echo", "", harness.DefaultTimeout)
		if !res.OK {
			t.Fatalf("no call succeeded: %+v", res)
		}
		if res.Backend != "echo-1" || res.SeenPeer != webID || res.PeerURI != "spiffe://shoal.local/ns/default/svc/echo" {
			t.Fatalf("backend %q saw caller %q, server identity %q; want echo-1, %s, echo's SPIFFE ID", res.Backend, res.SeenPeer, res.PeerURI, webID)
		}
	})

	t.Run("a grpc-go client with xDS credentials reaches the mTLS backend, which sees its identity", func(t *testing.T) {
		res := runProxylessClient(t, bootstrap, "xds:///greeter", "", harness.DefaultTimeout)
		if !res.OK {
			t.Fatalf("no call succeeded: %+v", res)
		}
		wantXFCC := "By=spiffe://shoal.local/ns/default/svc/greeter;URI=" + webID
		if res.Backend != "greeter-1" || res.XFCC != wantXFCC || res.PeerURI != "spiffe://shoal.local/ns/default/svc/greeter" {
			t.Fatalf("backend %q saw XFCC %q, server identity %q; want greeter-1, %q, greeter's SPIFFE ID", res.Backend, res.XFCC, res.PeerURI, wantXFCC)
		}
	})

	t.Run("a client whose bootstrap has no certificate provider cannot use the mTLS cluster", func(t *testing.T) {
		var b map[string]any
		raw, err := os.ReadFile(bootstrap)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatal(err)
		}
		delete(b, "certificate_providers")
		raw, _ = json.Marshal(b)
		noProvider := filepath.Join(t.TempDir(), "bootstrap.json")
		os.WriteFile(noProvider, raw, 0o644)
		res := runProxylessClient(t, noProvider, "xds:///greeter", `"shoal" missing in bootstrap`, harness.DefaultTimeout)
		if res.OK || res.TimedOut {
			t.Fatalf("want calls refused for the missing certificate provider \"shoal\": %+v", res)
		}
	})

	t.Run("a client whose node claims another service is refused by the xDS port", func(t *testing.T) {
		raw, _ := os.ReadFile(bootstrap)
		var b map[string]any
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatal(err)
		}
		b["node"].(map[string]any)["cluster"] = "greeter"
		raw, _ = json.Marshal(b)
		claim := filepath.Join(t.TempDir(), "bootstrap.json")
		os.WriteFile(claim, raw, 0o644)
		res := runProxylessClient(t, claim, "xds:///greeter", `PermissionDenied|claims service`, harness.DefaultTimeout)
		if res.OK || res.TimedOut {
			t.Fatalf("want the xDS port to refuse web's SVID subscribing as greeter: %+v", res)
		}
		if got := rejectedStreams(t, cp.Admin, "node_mismatch"); got < 1 {
			t.Errorf("shoal_xds_rejected_streams_total{reason=\"node_mismatch\"} = %d, want >= 1", got)
		}
	})

	t.Run("a client with another CA's certificate is refused by the backends", func(t *testing.T) {
		// The xDS stream keeps web's real SVID; the data plane gets an
		// impostor's certificate for web's SPIFFE ID from another CA.
		foreign := t.TempDir()
		cert, key := foreignSVID(t, foreign, webID)
		ca, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
		os.WriteFile(filepath.Join(foreign, "ca.pem"), ca, 0o644)
		raw, _ := os.ReadFile(bootstrap)
		var b struct {
			XDSServers           json.RawMessage `json:"xds_servers"`
			Node                 json.RawMessage `json:"node"`
			CertificateProviders map[string]struct {
				PluginName string            `json:"plugin_name"`
				Config     map[string]string `json:"config"`
			} `json:"certificate_providers"`
		}
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatal(err)
		}
		p := b.CertificateProviders["shoal"]
		p.Config["certificate_file"], p.Config["private_key_file"] = cert, key
		p.Config["ca_certificate_file"] = filepath.Join(foreign, "ca.pem")
		b.CertificateProviders["shoal"] = p
		raw, _ = json.Marshal(b)
		impostor := filepath.Join(foreign, "bootstrap.json")
		os.WriteFile(impostor, raw, 0o644)
		// The sidecar and the xDS server refuse the certificate with a TLS
		// alert the client reads as the server's first bytes (some
		// attempts see the closed connection first: "broken pipe"). The
		// grpc-go server names its CAs in its certificate request, so the
		// client does not even send a certificate of another CA.
		for _, target := range []string{"xds:///greeter", "xds:///echo"} {
			res := runProxylessClient(t, impostor, target, `remote error: tls: (bad certificate|unknown certificate authority|certificate required)`, harness.DefaultTimeout)
			if res.OK || res.TimedOut {
				t.Fatalf("%s: want the backend to refuse a client certificate from another CA: %+v", target, res)
			}
		}
	})
}
