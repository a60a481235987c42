package controlplane

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
)

// externalEtcdTLS is the client TLS configuration for an external etcd
// (Config.EtcdEndpoints): nil for http:// endpoints without TLS files.
func (c *Config) externalEtcdTLS() (*tls.Config, error) {
	https := false
	for _, e := range c.EtcdEndpoints {
		if strings.HasPrefix(e, "https://") {
			https = true
		}
	}
	files := c.EtcdCAFile != "" || c.EtcdCertFile != "" || c.EtcdKeyFile != ""
	switch {
	case !https && !files:
		return nil, nil
	case !https:
		return nil, errors.New("controlplane: --etcd-cacert, --etcd-cert and --etcd-key need https:// --etcd-endpoints")
	case (c.EtcdCertFile == "") != (c.EtcdKeyFile == ""):
		return nil, errors.New("controlplane: --etcd-cert and --etcd-key: give both or neither")
	}
	for _, e := range c.EtcdEndpoints {
		if !strings.HasPrefix(e, "https://") {
			return nil, fmt.Errorf("controlplane: --etcd-endpoints %s: mixes http:// and https:// endpoints", e)
		}
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.EtcdCAFile != "" {
		pemBytes, err := os.ReadFile(c.EtcdCAFile)
		if err != nil {
			return nil, fmt.Errorf("controlplane: --etcd-cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("controlplane: --etcd-cacert %s: no PEM certificate in it", c.EtcdCAFile)
		}
		tc.RootCAs = pool
	}
	if c.EtcdCertFile != "" {
		kp := &reloadingKeyPair{certFile: c.EtcdCertFile, keyFile: c.EtcdKeyFile}
		if _, err := kp.get(); err != nil {
			return nil, fmt.Errorf("controlplane: --etcd-cert/--etcd-key: %w", err)
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp.get() }
	}
	return tc, nil
}

// reloadingKeyPair is a client certificate read from files, read again
// when their contents change: a Kubernetes Secret renewed by cert-manager
// replaces the mounted files, and the next connection (etcd's client
// redials on failure) presents the new certificate without a restart.
type reloadingKeyPair struct {
	certFile, keyFile string

	mu      sync.Mutex
	certPEM []byte
	keyPEM  []byte
	keyPair *tls.Certificate
}

func (r *reloadingKeyPair) get() (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(r.certFile)
	if err != nil {
		return r.fallback(err)
	}
	keyPEM, err := os.ReadFile(r.keyFile)
	if err != nil {
		return r.fallback(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keyPair != nil && bytes.Equal(certPEM, r.certPEM) && bytes.Equal(keyPEM, r.keyPEM) {
		return r.keyPair, nil
	}
	kp, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// A Secret update is two files written one after the other: keep
		// the last good pair until both match again.
		if r.keyPair != nil {
			return r.keyPair, nil
		}
		return nil, err
	}
	r.certPEM, r.keyPEM, r.keyPair = certPEM, keyPEM, &kp
	return r.keyPair, nil
}

// fallback keeps the last good pair while the files are briefly missing
// (a Secret's symlink swap).
func (r *reloadingKeyPair) fallback(err error) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keyPair != nil {
		return r.keyPair, nil
	}
	return nil, err
}
