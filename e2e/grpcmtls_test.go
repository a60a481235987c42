package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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
		grpc.SetHeader(ctx, metadata.Pairs("x-backend", id, "x-seen-peer", caller, "x-seen-peer-serial", caller2serial(ctx)))
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

// caller2serial is the serial number of the caller's certificate.
func caller2serial(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	return certSerial(p.AuthInfo)
}

func certSerial(ai credentials.AuthInfo) string {
	ti, ok := ai.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return ""
	}
	return ti.State.PeerCertificates[0].SerialNumber.Text(16)
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
	// Loop mode (SHOAL_E2E_GRPC_LOOP): calls on a new channel each, for
	// SHOAL_E2E_GRPC_FOR, with the failures and the certificate serials
	// the client saw of the server and the server of the client.
	Failures      int      `json:"failures"`
	ServerSerials []string `json:"server_serials"`
	ClientSerials []string `json:"client_serials"`
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
	if os.Getenv("SHOAL_E2E_GRPC_LOOP") != "" {
		loopNewChannels(target, creds, deadline, &res)
		return
	}
	hc := healthpb.NewHealthClient(cc)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var md metadata.MD
		var p peer.Peer
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&md), grpc.Peer(&p))
		cancel()
		res.Calls++
		if err == nil && os.Getenv("SHOAL_E2E_GRPC_UNTIL_ERR") != "" {
			time.Sleep(100 * time.Millisecond) // pacing, not synchronization
			continue
		}
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

// loopNewChannels makes one call on a new channel (a new connection and
// TLS handshake, with the key material the certificate provider has then)
// at a time until deadline.
func loopNewChannels(target string, creds credentials.TransportCredentials, deadline time.Time, res *grpcXDSResult) {
	server, client := map[string]bool{}, map[string]bool{}
	for time.Now().Before(deadline) {
		cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
		if err != nil {
			res.LastErr = err.Error()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var md metadata.MD
		var p peer.Peer
		_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&md), grpc.Peer(&p), grpc.WaitForReady(true))
		cancel()
		cc.Close()
		res.Calls++
		if err != nil {
			res.Failures++
			res.LastErr = err.Error()
			continue
		}
		res.OK = true
		server[certSerial(p.AuthInfo)] = true
		for _, s := range md.Get("x-seen-peer-serial") {
			client[s] = true
		}
		time.Sleep(50 * time.Millisecond) // pacing, not synchronization
	}
	res.ServerSerials, res.ClientSerials = slices.Sorted(maps.Keys(server)), slices.Sorted(maps.Keys(client))
}

// runProxylessClient runs the grpc-go client process against target with
// the bootstrap file and returns its result.
func runProxylessClient(t *testing.T, bootstrap, target, wantErr string, d time.Duration, env ...string) grpcXDSResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d+harness.DefaultTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), grpcXDSClientEnv+"="+target, "GRPC_XDS_BOOTSTRAP="+bootstrap,
		"SHOAL_E2E_GRPC_WANT_ERR="+wantErr, "SHOAL_E2E_GRPC_FOR="+d.String())
	cmd.Env = append(cmd.Env, env...)
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
	fetch := identityFetcher(t, cp)

	// greeter: a grpc-go backend behind a sidecar with an identity.
	appPort := harness.FreePort(t)
	appAddr := fmt.Sprintf("127.0.0.1:%d", appPort)
	harness.Start(t, os.Args[0], []string{grpcBackendEnv + "=" + appAddr, "SHOAL_E2E_GRPC_ID=greeter-1"})
	greeter := harness.StartSidecar(t, harness.SidecarOptions{
		CP: cp, Service: "greeter", InstanceID: "greeter-1", AppPort: appPort,
		Extra: []string{"--listen", harness.FreeAddr(t), "--app-protocol", "grpc", "--health-path=",
			"--join-token-file", createToken(t, cp, tokDir, "greeter")},
	})

	// echo: an xDS-enabled grpc-go server with its own identity.
	startEchoServer(t, cp, fetch)

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
		// The sidecar and the xDS server close the connection after the
		// handshake: the client reads their TLS alert (bad certificate; the
		// grpc-go server names its CAs in its certificate request, so the
		// client sends none: certificate required) or, as often, writes
		// into the closed connection first (broken pipe). The same client
		// with web's real certificate gets answers (above), so the
		// certificate is what is refused; the sidecar also counts it.
		refused := `remote error: tls: (bad certificate|unknown certificate authority|certificate required)|write: broken pipe|connection reset by peer`
		for _, target := range []string{"xds:///greeter", "xds:///echo"} {
			res := runProxylessClient(t, impostor, target, refused, harness.DefaultTimeout)
			if res.OK || res.TimedOut {
				t.Fatalf("%s: want the backend to refuse a client certificate from another CA: %+v", target, res)
			}
		}
		body := adminGet(t, http.DefaultClient, "http://"+greeter.Admin+"/metrics")
		if n := metricValue(body, `shoal_sidecar_tls_handshakes_total{direction="inbound",result="error"}`); n < 1 {
			t.Errorf("greeter's sidecar counted %v failed inbound handshakes, want >= 1", n)
		}
	})

	t.Run("the xDS-enabled server enforces its service's authorization policy", func(t *testing.T) {
		_, opsBootstrap := fetch("ops")
		policy := filepath.Join(t.TempDir(), "policy.yaml")
		os.WriteFile(policy, []byte("name: echo-callers\nservice: echo\nrules:\n  - callers: [\"ns/default/svc/ops\"]\n"), 0o644)
		if out, errOut, code := harness.Shoal(t, "policies", "apply", "-f", policy, "--api", cp.API); code != 0 {
			t.Fatalf("shoal policies apply: exit %d: %s%s", code, out, errOut)
		}
		// Until the server has the new listener web's calls still pass.
		res := runProxylessClient(t, bootstrap, "xds:///echo", `code = PermissionDenied`, harness.DefaultTimeout, "SHOAL_E2E_GRPC_UNTIL_ERR=1")
		if res.TimedOut {
			t.Fatalf("web was never denied by the policy: %+v", res)
		}
		t.Logf("web: %s", res.LastErr)
		res = runProxylessClient(t, opsBootstrap, "xds:///echo", "", harness.DefaultTimeout)
		if !res.OK || res.SeenPeer != "spiffe://shoal.local/ns/default/svc/ops" {
			t.Fatalf("ops, the allowed caller: %+v", res)
		}
	})
}

// startEchoServer starts an xDS-enabled grpc-go server for service echo
// with its own identity (`shoal identity fetch --grpc-bootstrap`, kept
// running) and registers it as an mTLS gRPC endpoint.
func startEchoServer(t *testing.T, cp *harness.ControlPlane, fetch func(string) (string, string)) {
	t.Helper()
	_, echoBootstrap := fetch("echo")
	echoPort := harness.FreePort(t)
	harness.Start(t, os.Args[0], []string{grpcXDSServerEnv + "=" + fmt.Sprintf("127.0.0.1:%d", echoPort),
		"SHOAL_E2E_GRPC_ID=echo-1", "GRPC_XDS_BOOTSTRAP=" + echoBootstrap})
	ctx, cancel := context.WithTimeout(t.Context(), harness.DefaultTimeout)
	defer cancel()
	_, err := cp.EtcdClient(t).Do(ctx, harness.PutInstance(t, registry.Instance{
		ID: "echo-1", Service: "echo", Address: "127.0.0.1", Port: echoPort, Protocol: registry.ProtocolGRPC, TLS: registry.TLSMutual,
	}))
	if err != nil {
		t.Fatal(err)
	}
}

// identityFetcher returns a function that starts `shoal identity fetch`
// for a service with a new join token and returns its directory and
// bootstrap once the bootstrap is written.
func identityFetcher(t *testing.T, cp *harness.ControlPlane) func(service string) (dir, bootstrap string) {
	tokDir := t.TempDir()
	return func(service string) (dir, bootstrap string) {
		t.Helper()
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
}

// Rotation (issue 13, proxyless): with --svid-ttl 6s, shoal identity fetch
// renews both sides' certificates every ~3 s; a client that opens a new
// connection for every call (so every call is a new handshake with the key
// material gRPC's file_watcher has then) keeps getting answers from the
// xDS-enabled server while the serial numbers of both certificates change
// at least twice. SHOAL_E2E_LONG_ROTATION=1 runs a 30 s TTL over 60 s.
func TestProxylessGRPCRotation(t *testing.T) {
	t.Parallel()
	ttl, dur := "6s", 15*time.Second
	if os.Getenv("SHOAL_E2E_LONG_ROTATION") != "" {
		ttl, dur = "30s", 60*time.Second
	}
	cp := harness.StartControlPlane(t, "--xds-auth=required", "--svid-ttl", ttl)
	fetch := identityFetcher(t, cp)
	startEchoServer(t, cp, fetch)
	_, bootstrap := fetch("web")
	// The first call waits for the server's listener.
	if res := runProxylessClient(t, bootstrap, "xds:///echo", "", harness.DefaultTimeout); !res.OK {
		t.Fatalf("no call succeeded: %+v", res)
	}
	res := runProxylessClient(t, bootstrap, "xds:///echo", "", dur, "SHOAL_E2E_GRPC_LOOP=1")
	t.Logf("%d calls on new connections over %s, %d failed; server serials %v, client serials %v", res.Calls, dur, res.Failures, res.ServerSerials, res.ClientSerials)
	if res.Failures != 0 {
		t.Errorf("%d of %d calls failed during rotation; last: %s", res.Failures, res.Calls, res.LastErr)
	}
	if len(res.ServerSerials) < 3 || len(res.ClientSerials) < 3 {
		t.Errorf("server certificates %v, client certificates %v: want each to change at least twice", res.ServerSerials, res.ClientSerials)
	}
}
