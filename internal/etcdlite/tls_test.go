package etcdlite_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/shoal-mesh/shoal/internal/etcdlite"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
)

// startTLSEtcd starts an embedded etcd serving clients over TLS with a
// fresh self-signed certificate for 127.0.0.1, and returns its https URL
// and a pool that trusts the certificate.
func startTLSEtcd(t *testing.T) (string, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	client, _ := url.Parse("https://" + etcdtest.FreeAddr(t))
	peer, _ := url.Parse("http://" + etcdtest.FreeAddr(t))
	cfg := embed.NewConfig()
	cfg.Dir = filepath.Join(dir, "data")
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	cfg.ClientTLSInfo.CertFile, cfg.ClientTLSInfo.KeyFile = certFile, keyFile
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.Metrics = "basic"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("start TLS etcd: %v", err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(defaultTestTimeout):
		t.Fatal("TLS etcd not ready")
	}
	return client.String(), pool
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "etcd"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certFile, keyFile, pool
}

// An https:// endpoint is spoken to over TLS, verified against Config.TLS
// or, without one, the host's roots (as clientv3 does): the sidecar's
// --etcd https://... keeps working.
func TestHTTPSEndpointUsesTLS(t *testing.T) {
	endpoint, pool := startTLSEtcd(t)

	c, err := etcdlite.New(etcdlite.Config{Endpoints: []string{endpoint}, TLS: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Put(testCtx(t), "/k", []byte("v"), 0); err != nil {
		t.Errorf("Put over TLS: %v", err)
	}

	untrusted := newClient(t, endpoint)                            // host roots: the self-signed cert is not among them
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second) // it waits for a connection that cannot be made
	defer cancel()
	if _, err := untrusted.Put(ctx, "/k", []byte("v"), 0); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Put over TLS with an untrusted certificate = %v, want a certificate error", err)
	}
}
