package controlplane_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/controlplane"
	"github.com/shoal-mesh/shoal/controlplane/identity"
	shoalidentity "github.com/shoal-mesh/shoal/identity"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// tokenCreds sends a bearer token.
type tokenCreds string

func (c tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(c)}, nil
}
func (tokenCreds) RequireTransportSecurity() bool { return true }

// With --api-auth=required (on loopback) every management API call needs
// the admin SVID, a workload SVID (read only) or a bearer token, over TLS
// with the mesh CA's certificate; refused calls write nothing.
func TestAPIAuthRequired(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	srv, _ := start(t, func(c *controlplane.Config) {
		c.DataDir = dataDir
		c.APIAuth = controlplane.APIAuthRequired
	})
	a := srv.Addrs()
	waitReady(t, a.Admin)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	td := spiffeid.RequireTrustDomainFromString(shoalidentity.DefaultTrustDomain)
	ca, err := identity.Load(filepath.Join(dataDir, "ca"), td)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root())
	dial := func(cert *tls.Certificate, tok string) *grpc.ClientConn {
		t.Helper()
		cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}
		if tok != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds(tok)))
		}
		conn, err := grpc.NewClient(a.API, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	rev := func() int64 {
		t.Helper()
		r, err := srv.Client().Get(ctx, "/shoal/v1/routes/")
		if err != nil {
			t.Fatal(err)
		}
		return r.Header.Revision
	}
	route := func(name string) *shoalv1.CreateRouteRequest {
		return &shoalv1.CreateRouteRequest{Route: &shoalv1.Route{Name: name, Hosts: []string{name},
			Rules: []*shoalv1.Rule{{Destinations: []*shoalv1.Destination{{Service: "web"}}}}}}
	}
	refused := func(conn *grpc.ClientConn, want codes.Code, why string) {
		t.Helper()
		before := rev()
		_, err := shoalv1.NewRouteServiceClient(conn).CreateRoute(ctx, route("sneaky"))
		if status.Code(err) != want {
			t.Fatalf("%s: CreateRoute = %v, want %v", why, err, want)
		}
		if after := rev(); after != before {
			t.Fatalf("%s: etcd revision %d -> %d after a refused write", why, before, after)
		}
	}

	// Plain text is not served at all.
	plain, err := grpc.NewClient(a.API, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := shoalv1.NewRouteServiceClient(plain).ListRoutes(ctx, &shoalv1.ListRoutesRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("plain-text ListRoutes = %v, want Unavailable", err)
	}

	// TLS without credentials: Unauthenticated, with the reason; the
	// health service stays open for probes.
	anon := dial(nil, "")
	_, err = shoalv1.NewRouteServiceClient(anon).ListRoutes(ctx, &shoalv1.ListRoutesRequest{})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "bearer token") {
		t.Fatalf("anonymous ListRoutes = %v, want Unauthenticated naming the bearer token", err)
	}
	refused(anon, codes.Unauthenticated, "anonymous")
	if _, err := shoalv1.NewTokenServiceClient(anon).CreateToken(ctx, &shoalv1.CreateTokenRequest{Role: "admin"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("anonymous CreateToken(admin) = %v, want Unauthenticated", err)
	}
	if r, err := healthpb.NewHealthClient(anon).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("anonymous health check = %v, %v; want SERVING", r, err)
	}
	refused(dial(nil, "shoaljt1.not-a-real-token-at-all-0123456789abcdef."+strings.Repeat("0", 64)), codes.Unauthenticated, "unknown token")

	// The admin certificate from `shoal ca issue-admin` may do everything.
	adminDir := t.TempDir()
	if _, err := ca.WriteAdmin(adminDir, time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	adminCert, err := tls.LoadX509KeyPair(filepath.Join(adminDir, "cert.pem"), filepath.Join(adminDir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(adminDir, "ca.pem")); err != nil || !strings.Contains(string(b), "CERTIFICATE") {
		t.Fatalf("ca.pem: %v", err)
	}
	admin := dial(&adminCert, "")
	tokens := shoalv1.NewTokenServiceClient(admin)
	viewerTok, err := tokens.CreateToken(ctx, &shoalv1.CreateTokenRequest{Role: "viewer"})
	if err != nil || viewerTok.Role != "viewer" {
		t.Fatalf("CreateToken(viewer) = %v, %v", viewerTok, err)
	}
	adminTok, err := tokens.CreateToken(ctx, &shoalv1.CreateTokenRequest{Role: "admin", TtlSeconds: 600})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.CreateToken(ctx, &shoalv1.CreateTokenRequest{Role: "root"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("CreateToken(root) = %v, want InvalidArgument", err)
	}
	// Only the hash is stored.
	r, err := srv.Client().Get(ctx, identity.APITokensPrefix, clientv3.WithPrefix())
	if err != nil || len(r.Kvs) != 2 {
		t.Fatalf("stored API tokens: %v, %v; want 2", r, err)
	}
	for _, kv := range r.Kvs {
		if strings.Contains(string(kv.Key)+string(kv.Value), strings.Split(viewerTok.Token, ".")[1]) {
			t.Fatalf("the token's secret is stored in etcd: %s", kv.Key)
		}
	}

	// A viewer lists but does not apply.
	viewer := dial(nil, viewerTok.Token)
	if _, err := shoalv1.NewRouteServiceClient(viewer).ListRoutes(ctx, &shoalv1.ListRoutesRequest{}); err != nil {
		t.Fatalf("viewer ListRoutes: %v", err)
	}
	if _, err := shoalv1.NewMeshServiceClient(viewer).Status(ctx, &shoalv1.StatusRequest{}); err != nil {
		t.Fatalf("viewer Status: %v", err)
	}
	refused(viewer, codes.PermissionDenied, "viewer")
	if _, err := shoalv1.NewTokenServiceClient(viewer).CreateToken(ctx, &shoalv1.CreateTokenRequest{Role: "admin"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("viewer CreateToken(admin) = %v, want PermissionDenied", err)
	}

	// A workload's SVID only reads.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	webID, _ := shoalidentity.ServiceID(td, "default", "web")
	chain, err := ca.SignSVID(webID, &key.PublicKey, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	webCert := tls.Certificate{PrivateKey: key, Certificate: [][]byte{chain[0].Raw, chain[1].Raw}}
	web := dial(&webCert, "")
	if _, err := shoalv1.NewRegistryServiceClient(web).ListServices(ctx, &shoalv1.ListServicesRequest{}); err != nil {
		t.Fatalf("web SVID ListServices: %v", err)
	}
	refused(web, codes.PermissionDenied, "web SVID")

	// An admin token and the admin certificate apply routes.
	if _, err := shoalv1.NewRouteServiceClient(dial(nil, adminTok.Token)).CreateRoute(ctx, route("shop")); err != nil {
		t.Fatalf("admin token CreateRoute: %v", err)
	}
	if _, err := shoalv1.NewRouteServiceClient(admin).CreateRoute(ctx, route("shop2")); err != nil {
		t.Fatalf("admin certificate CreateRoute: %v", err)
	}
}
