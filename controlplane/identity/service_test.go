package identity_test

import (
	"context"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/controlplane/identity"
	shoalidentity "github.com/shoal-mesh/shoal/identity"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	sidecaridentity "github.com/shoal-mesh/shoal/sidecar/identity"
)

const testTimeout = 30 * time.Second

type testCP struct {
	addr string
	svc  *identity.Service
	ca   *identity.CA
}

// startCP serves IdentityService on a loopback port, as the control plane
// does on its xDS port.
func startCP(t *testing.T, ttl time.Duration) *testCP {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString("shoal.local")
	ca, created, err := identity.LoadOrInit(filepath.Join(t.TempDir(), "ca"), td, time.Now())
	if err != nil || !created {
		t.Fatalf("LoadOrInit: created=%v err=%v", created, err)
	}
	e := etcdtest.Start(t)
	svc, err := identity.NewService(identity.ServiceConfig{CA: ca, Tokens: identity.NewTokenStore(e.Client(t)), SVIDTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(svc.Creds()))
	svc.Register(g)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { g.Serve(l); close(done) }()
	t.Cleanup(func() { g.Stop(); <-done })
	return &testCP{addr: l.Addr().String(), svc: svc, ca: ca}
}

func (cp *testCP) token(t *testing.T, service string, uses int32) string {
	t.Helper()
	resp, err := cp.svc.CreateToken(t.Context(), &shoalv1.CreateTokenRequest{Service: service, Uses: uses})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Token
}

func TestSignWithTokenThenRenewWithSVID(t *testing.T) {
	cp := startCP(t, time.Hour)
	state := t.TempDir()
	token := cp.token(t, "web", 1)
	c, err := sidecaridentity.New(sidecaridentity.Config{Server: cp.addr, Token: token, StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if got, want := c.ID().String(), "spiffe://shoal.local/ns/default/svc/web"; got != want {
		t.Fatalf("ID = %s, want %s", got, want)
	}
	first, _ := c.GetX509SVID()
	if ttl := first.Certificates[0].NotAfter.Sub(first.Certificates[0].NotBefore); ttl < time.Hour || ttl > time.Hour+2*time.Minute {
		t.Errorf("SVID lifetime %s, want about 1h", ttl)
	}
	// The token had one use: renewal must work without it (mTLS).
	if err := c.Renew(ctx); err != nil {
		t.Fatalf("Renew with the SVID: %v", err)
	}
	second, _ := c.GetX509SVID()
	if first.Certificates[0].SerialNumber.Cmp(second.Certificates[0].SerialNumber) == 0 {
		t.Error("renewal kept the serial number")
	}
	if first.PrivateKey == second.PrivateKey {
		t.Error("renewal kept the key")
	}
	fi, err := os.Stat(filepath.Join(state, sidecaridentity.StateFiles.Key))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}

	t.Run("a restart comes back with the SVID in the state dir without the control plane", func(t *testing.T) {
		c2, err := sidecaridentity.New(sidecaridentity.Config{Server: "127.0.0.1:1", StateDir: state})
		if err != nil {
			t.Fatal(err)
		}
		if err := c2.Start(ctx); err != nil {
			t.Fatalf("Start from the state dir: %v", err)
		}
		got, _ := c2.GetX509SVID()
		if got.Certificates[0].SerialNumber.Cmp(second.Certificates[0].SerialNumber) != 0 {
			t.Error("the restarted client has another SVID than the last one written")
		}
	})
	t.Run("a used-up token is refused", func(t *testing.T) {
		c3, err := sidecaridentity.New(sidecaridentity.Config{Server: cp.addr, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		err = c3.Start(ctx)
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("Start with a used token: %v, want Unauthenticated", err)
		}
	})
}

func TestTokenCannotGetAnotherIdentity(t *testing.T) {
	cp := startCP(t, time.Hour)
	orders, _ := shoalidentity.ServiceID(cp.ca.TrustDomain(), "", "orders")
	c, err := sidecaridentity.New(sidecaridentity.Config{Server: cp.addr, Token: cp.token(t, "web", 1), ID: orders.String()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	err = c.Start(ctx)
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a web token asking for %s: %v, want PermissionDenied", orders, err)
	}
}

func TestWrongControlPlaneIsRefused(t *testing.T) {
	cp := startCP(t, time.Hour)
	other := startCP(t, time.Hour)
	c, err := sidecaridentity.New(sidecaridentity.Config{Server: other.addr, Token: cp.token(t, "web", 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	if err := c.Start(ctx); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Fatalf("Start against another mesh's control plane: %v, want a fingerprint error", err)
	}
}

func TestInitRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	if err := identity.Init(dir, td, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := identity.Init(dir, td, time.Now()); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("second Init: %v", err)
	}
	ca, err := identity.Load(dir, td)
	if err != nil {
		t.Fatal(err)
	}
	if ttl := ca.Root().NotAfter.Sub(ca.Root().NotBefore); ttl < 3650*24*time.Hour {
		t.Errorf("root lifetime %s, want 10 years", ttl)
	}
	if ttl := ca.Intermediate().NotAfter.Sub(ca.Intermediate().NotBefore); ttl < 365*24*time.Hour || ttl > 366*24*time.Hour {
		t.Errorf("intermediate lifetime %s, want 1 year", ttl)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root())
	if _, err := ca.Intermediate().Verify(x509.VerifyOptions{Roots: pool}); err != nil {
		t.Errorf("intermediate does not chain to the root: %v", err)
	}
	for _, f := range []string{identity.RootKeyFile, identity.CAKeyFile} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v mode %v, want 0600", f, err, fi.Mode())
		}
	}
}
