package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// TestXDSAuth forces the xDS port's identity binding on loopback
// (--xds-auth=required): sidecars with SVIDs get their configuration over
// mTLS (web reaches orders), but a client with web's SVID cannot subscribe
// as an orders node, and a plain-text xDS client is refused; each refusal
// is counted by reason.
func TestXDSAuth(t *testing.T) {
	t.Parallel()
	p := startMTLSPair(t, "--xds-auth=required")

	// web's SVID, as a proxyless client would keep it.
	dir := t.TempDir()
	tok := createToken(t, p.cp, p.tokDir, "web")
	if _, errOut, code := harness.Shoal(t, "identity", "fetch", "--xds", p.cp.XDS, "--join-token-file", tok, "--out", dir, "--once"); code != 0 {
		t.Fatalf("shoal identity fetch: exit %d: %s", code, errOut)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	mtls := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, MinVersion: tls.VersionTLS13})

	subscribe := func(creds credentials.TransportCredentials, cluster string) error {
		t.Helper()
		conn, err := grpc.NewClient(p.cp.XDS, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(t.Context(), harness.DefaultTimeout)
		defer cancel()
		stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
		if err != nil {
			return err
		}
		if err := stream.Send(&discoveryv3.DiscoveryRequest{
			Node:    &corev3.Node{Id: cluster + "-9", Cluster: cluster},
			TypeUrl: "type.googleapis.com/envoy.config.cluster.v3.Cluster",
		}); err != nil && err != io.EOF {
			return err
		}
		_, err = stream.Recv()
		return err
	}

	// Its own service: served.
	if err := subscribe(mtls, "web"); err != nil {
		t.Fatalf("web SVID subscribing as web: %v", err)
	}
	// Another service: PermissionDenied, naming both.
	err = subscribe(mtls, "orders")
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `"orders"`) || !strings.Contains(err.Error(), `"web"`) {
		t.Fatalf("web SVID subscribing as orders: %v; want PermissionDenied naming orders and web", err)
	}
	// Plain text: refused.
	if err := subscribe(insecure.NewCredentials(), "web"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("plain-text xDS subscription: %v; want Unauthenticated", err)
	}

	for reason, want := range map[string]int{"node_mismatch": 1, "plaintext": 1} {
		if got := rejectedStreams(t, p.cp.Admin, reason); got < want {
			t.Errorf("shoal_xds_rejected_streams_total{reason=%q} = %d, want >= %d", reason, got, want)
		}
	}
	// The sidecars' own streams were never refused.
	if got := rejectedStreams(t, p.cp.Admin, "node_mismatch"); got != 1 {
		t.Errorf("node_mismatch rejections = %d, want exactly the one above", got)
	}
}

func rejectedStreams(t *testing.T, admin, reason string) int {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^shoal_xds_rejected_streams_total\{reason="` + reason + `"\} (\d+)`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}
