package etcdlite_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/shoal-mesh/shoal/internal/etcdlite"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
	"github.com/shoal-mesh/shoal/internal/testutil/tlstest"
)

// startTLSEtcd starts an embedded etcd serving clients over TLS with a
// fresh self-signed certificate for 127.0.0.1, and returns its https URL
// and a pool that trusts the certificate.
func startTLSEtcd(t *testing.T) (string, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, pool := tlstest.SelfSigned(t, dir, "etcd")
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
