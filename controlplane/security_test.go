package controlplane_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-mesh/shoal/controlplane"
	"github.com/shoal-mesh/shoal/controlplane/identity"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
)

// A control plane asked to serve plain text beyond loopback refuses to
// start, naming the flag and --insecure; nothing is started (no data dir).
func TestPlainBeyondLoopbackRefused(t *testing.T) {
	for _, tc := range []struct {
		name, flag string
		set        func(*controlplane.Config)
	}{
		{"xds-off", "--xds-listen", func(c *controlplane.Config) { c.XDSListen = "0.0.0.0:0"; c.XDSAuth = controlplane.APIAuthOff }},
		{"gossip-off", "--gossip-listen", func(c *controlplane.Config) { c.GossipListen = "0.0.0.0:0"; c.GossipAuth = controlplane.APIAuthOff }},
		{"etcd-off", "--etcd-listen", func(c *controlplane.Config) { c.EtcdListen = "0.0.0.0:2379"; c.EtcdTLS = controlplane.APIAuthOff }},
		{"api-off", "--api-listen", func(c *controlplane.Config) { c.APIListen = "0.0.0.0:0"; c.APIAuth = controlplane.APIAuthOff }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := controlplane.DefaultConfig()
			cfg.DataDir = filepath.Join(t.TempDir(), "data")
			cfg.XDSListen, cfg.APIListen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
			cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			tc.set(&cfg)
			srv, err := controlplane.New(cfg)
			if err == nil {
				srv.Run(canceled())
				t.Fatalf("New started with %s beyond loopback in plain text: %v", tc.flag, srv.Addrs())
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.flag) || !strings.Contains(msg, "--insecure") || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line naming %s and --insecure", msg, tc.flag)
			}
		})
	}
}

// With --insecure the same configuration starts (a trusted network).
func TestInsecureAllowsPlainBeyondLoopback(t *testing.T) {
	srv, _ := start(t, func(c *controlplane.Config) {
		c.AdminListen = "0.0.0.0:0"
		c.Insecure = true
	})
	waitReady(t, "127.0.0.1:"+srv.Addrs().Admin[strings.LastIndex(srv.Addrs().Admin, ":")+1:])
}

func TestAPIAuthModeChecked(t *testing.T) {
	cfg := controlplane.DefaultConfig()
	cfg.APIAuth = "sometimes"
	if _, err := controlplane.New(cfg); err == nil || !strings.Contains(err.Error(), "--api-auth") {
		t.Fatalf("New with --api-auth sometimes: %v, want an error naming --api-auth", err)
	}
	cfg.APIAuth, cfg.XDSAuth = "", "maybe"
	if _, err := controlplane.New(cfg); err == nil || !strings.Contains(err.Error(), "--xds-auth") {
		t.Fatalf("New with --xds-auth maybe: %v, want an error naming --xds-auth", err)
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// With --etcd-tls=required the embedded etcd serves TLS and refuses a
// client without a certificate of the mesh CA; the control plane itself
// and a holder of the admin certificate get in.
func TestEtcdTLSRequired(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	srv, _ := start(t, func(c *controlplane.Config) {
		c.DataDir = dataDir
		c.EtcdTLS = controlplane.APIAuthRequired
	})
	a := srv.Addrs()
	waitReady(t, a.Admin)
	if !strings.HasPrefix(a.Etcd, "https://") {
		t.Fatalf("etcd endpoint %s, want https", a.Etcd)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := srv.Client().Put(ctx, "/shoal/v1/probe", "x"); err != nil {
		t.Fatalf("the control plane's own etcd client: %v", err)
	}

	// No certificate: refused (plain http gets nowhere; TLS without a
	// client certificate fails the handshake).
	for name, tc := range map[string]*tls.Config{
		"plain":                     nil,
		"tls without a certificate": {RootCAs: rootPool(t, dataDir)},
	} {
		ep := a.Etcd
		if tc == nil {
			ep = "http://" + strings.TrimPrefix(ep, "https://")
		}
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, TLS: tc, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			continue // refused at dial: as good
		}
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
		_, err = cli.Put(cctx, "/shoal/v1/instances/web/rogue", `{"address":"10.6.6.6","port":80}`)
		ccancel()
		cli.Close()
		if err == nil {
			t.Fatalf("%s: an etcd client without a certificate could write", name)
		}
	}
	r, err := srv.Client().Get(ctx, "/shoal/v1/instances/web/rogue")
	if err != nil || len(r.Kvs) != 0 {
		t.Fatalf("rogue instance in etcd: %v, %v", r, err)
	}

	// The admin certificate is a client certificate of the mesh CA.
	td := spiffeid.RequireTrustDomainFromString("shoal.local")
	ca, err := identity.Load(filepath.Join(dataDir, "ca"), td)
	if err != nil {
		t.Fatal(err)
	}
	adminDir := t.TempDir()
	if _, err := ca.WriteAdmin(adminDir, time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(adminDir, "cert.pem"), filepath.Join(adminDir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{a.Etcd}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{RootCAs: rootPool(t, dataDir), Certificates: []tls.Certificate{cert}}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if r, err := cli.Get(ctx, "/shoal/v1/probe"); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("admin certificate Get: %v, %v", r, err)
	}

	// A workload SVID is a client certificate of the same CA, but holding
	// web's identity must not open the registry: refused, nothing written.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := ca.SignSVID(spiffeid.RequireFromString("spiffe://shoal.local/ns/default/svc/web"), &key.PublicKey, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	svid := tls.Certificate{Certificate: [][]byte{chain[0].Raw, chain[1].Raw}, PrivateKey: key}
	before, err := srv.Client().Get(ctx, "/shoal/v1/probe")
	if err != nil {
		t.Fatal(err)
	}
	wcli, err := clientv3.New(clientv3.Config{Endpoints: []string{a.Etcd}, DialTimeout: 2 * time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{RootCAs: rootPool(t, dataDir), Certificates: []tls.Certificate{svid}}})
	if err == nil {
		wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
		_, err = wcli.Put(wctx, "/shoal/v1/instances/web/rogue", `{"address":"10.6.6.6","port":80}`)
		wcancel()
		wcli.Close()
		if err == nil {
			t.Fatal("a workload SVID wrote to the embedded etcd")
		}
	}
	after, err := srv.Client().Get(ctx, "/shoal/v1/probe")
	if err != nil || after.Header.Revision != before.Header.Revision {
		t.Fatalf("etcd revision %d -> %d (%v) after a refused workload write", before.Header.Revision, after.Header.Revision, err)
	}
}

func rootPool(t *testing.T, dataDir string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "ca", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(b)
	return p
}

// A second control plane on the first one's etcd as an external etcd:
// https:// with --etcd-cacert, --etcd-cert and --etcd-key (here the admin
// certificate, a client certificate of the mesh CA) gets in and shares the
// registry; one without a client certificate fails the handshake.
func TestExternalEtcdClientCertificate(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	a, _ := start(t, func(c *controlplane.Config) {
		c.DataDir = dataDir
		c.EtcdTLS = controlplane.APIAuthRequired
	})
	waitReady(t, a.Addrs().Admin)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := a.Client().Put(ctx, "/shoal/v1/probe", "from-a"); err != nil {
		t.Fatal(err)
	}
	ca, err := identity.Load(filepath.Join(dataDir, "ca"), spiffeid.RequireTrustDomainFromString("shoal.local"))
	if err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	if _, err := ca.WriteAdmin(certDir, time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	b, _ := start(t, func(c *controlplane.Config) {
		c.EtcdEndpoints = []string{a.Addrs().Etcd}
		c.EtcdCAFile = filepath.Join(dataDir, "ca", "root.crt")
		c.EtcdCertFile, c.EtcdKeyFile = filepath.Join(certDir, "cert.pem"), filepath.Join(certDir, "key.pem")
	})
	waitReady(t, b.Addrs().Admin)
	if r, err := b.Client().Get(ctx, "/shoal/v1/probe"); err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "from-a" {
		t.Fatalf("control plane on the external TLS etcd: Get = %v, %v", r, err)
	}

	// The same endpoint with the CA but no client certificate: the
	// control plane starts (etcd may come later) but cannot write.
	c, _ := start(t, func(c *controlplane.Config) {
		c.EtcdEndpoints = []string{a.Addrs().Etcd}
		c.EtcdCAFile = filepath.Join(dataDir, "ca", "root.crt")
	})
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = c.Client().Put(wctx, "/shoal/v1/instances/web/rogue", `{"address":"10.6.6.6","port":80}`)
	wcancel()
	if err == nil {
		t.Fatal("a control plane without a client certificate wrote to etcd")
	}
}

// Bad external-etcd TLS settings fail New with the flag named.
func TestExternalEtcdTLSChecked(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		set        func(*controlplane.Config)
	}{
		{"files with http", "--etcd-cacert", func(c *controlplane.Config) {
			c.EtcdEndpoints, c.EtcdCAFile = []string{"http://127.0.0.1:1"}, "ca.pem"
		}},
		{"cert without key", "--etcd-key", func(c *controlplane.Config) {
			c.EtcdEndpoints, c.EtcdCertFile = []string{"https://127.0.0.1:1"}, "cert.pem"
		}},
		{"missing CA file", "--etcd-cacert", func(c *controlplane.Config) {
			c.EtcdEndpoints, c.EtcdCAFile = []string{"https://127.0.0.1:1"}, filepath.Join(t.TempDir(), "nope.pem")
		}},
		{"plain beyond loopback", "--etcd-endpoints", func(c *controlplane.Config) {
			c.EtcdEndpoints = []string{"http://192.0.2.10:2379"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := controlplane.DefaultConfig()
			cfg.DataDir = filepath.Join(t.TempDir(), "data")
			cfg.XDSListen, cfg.APIListen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
			cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			tc.set(&cfg)
			srv, err := controlplane.New(cfg)
			if err == nil {
				srv.Run(canceled())
				t.Fatal("New accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line naming %s", err, tc.want)
			}
		})
	}
}

// etcd's own user authentication (etcdctl user add; auth enable): the
// control plane logs in with --etcd-username and the password.
func TestExternalEtcdUserPassword(t *testing.T) {
	e := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	root := etcdtest.Client(t, e.Endpoint())
	for _, step := range []func() error{
		func() error { _, err := root.UserAdd(ctx, "root", "r00t-pw"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := root.UserAdd(ctx, "shoal", "s3cret"); return err },
		func() error { _, err := root.RoleAdd(ctx, "shoal"); return err },
		func() error {
			_, err := root.RoleGrantPermission(ctx, "shoal", "/shoal/", clientv3.GetPrefixRangeEnd("/shoal/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := root.UserGrantRole(ctx, "shoal", "shoal"); return err },
		func() error { _, err := root.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("etcd auth setup: %v", err)
		}
	}
	srv, _ := start(t, func(c *controlplane.Config) {
		c.EtcdEndpoints = []string{e.Endpoint()}
		c.EtcdUsername, c.EtcdPassword = "shoal", "s3cret"
	})
	waitReady(t, srv.Addrs().Admin)
	if _, err := srv.Client().Put(ctx, "/shoal/v1/probe", "x"); err != nil {
		t.Fatalf("control plane with etcd user shoal: %v", err)
	}
	// Anonymous writes are refused now that auth is on.
	if _, err := root.Put(ctx, "/shoal/v1/instances/web/rogue", "{}"); err == nil {
		t.Fatal("anonymous etcd client wrote with auth enabled")
	}
}

// --tls-san: the xDS and API serving certificate names the given DNS
// names, so a client that checks host names (a gRPC bootstrap naming the
// Kubernetes Service) verifies it against the mesh root.
func TestServingCertificateNames(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	srv, _ := start(t, func(c *controlplane.Config) {
		c.DataDir = dataDir
		c.XDSAuth, c.APIAuth = controlplane.APIAuthRequired, controlplane.APIAuthRequired
		c.TLSNames = []string{"shoal-xds.shoal-system.svc", "10.96.0.10"}
	})
	waitReady(t, srv.Addrs().Admin)
	for _, addr := range []string{srv.Addrs().XDS, srv.Addrs().API} {
		for _, name := range []string{"shoal-xds.shoal-system.svc", "10.96.0.10", "127.0.0.1"} {
			conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: rootPool(t, dataDir), ServerName: name, MinVersion: tls.VersionTLS13})
			if err != nil {
				t.Fatalf("%s as %s: %v", addr, name, err)
			}
			conn.Close()
		}
		if conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: rootPool(t, dataDir), ServerName: "evil.example"}); err == nil {
			conn.Close()
			t.Fatalf("%s verified as evil.example", addr)
		}
	}
}
