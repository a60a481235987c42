package controlplane

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/shoal-mesh/shoal/internal/certfile"
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
		kp := &certfile.KeyPair{CertFile: c.EtcdCertFile, KeyFile: c.EtcdKeyFile}
		if _, err := kp.Get(); err != nil {
			return nil, fmt.Errorf("controlplane: --etcd-cert/--etcd-key: %w", err)
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp.Get() }
	}
	return tc, nil
}
