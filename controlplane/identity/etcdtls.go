package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// etcdCertTTL is the lifetime of the embedded etcd's certificate; a new
// one is written at every start.
const etcdCertTTL = 90 * 24 * time.Hour

// EtcdTLS is what WriteEtcdTLS wrote: the files for the embedded etcd
// and the control plane's client configuration.
type EtcdTLS struct {
	CertFile, KeyFile, TrustedCAFile string
	// Client is the control plane's etcd client configuration: the same
	// certificate, the mesh root as the only trusted root.
	Client *tls.Config
}

// etcdCommonName is the subject CN of the control plane's etcd certificate.
const etcdCommonName = "shoal control plane etcd"

// EtcdCommonNames are the subject CNs the embedded etcd admits among the
// mesh CA's client certificates: the control plane's and the admin's. A
// workload SVID, signed by the same CA, has none and is refused: holding
// an identity for one service must not give write access to the registry.
var EtcdCommonNames = []string{etcdCommonName, AdminCommonName}

// WriteEtcdTLS writes a fresh key and a certificate for the embedded etcd
// (the control plane's SPIFFE ID, server and client use, loopback, the
// given IPs and "localhost" as SANs) and the root into dir (0700), for
// etcd to serve clients and peers and to require client certificates of
// this CA.
func (ca *CA) WriteEtcdTLS(dir string, ips []net.IP, now time.Time) (*EtcdTLS, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	id, err := ControlPlaneID(ca.domain)
	if err != nil {
		return nil, err
	}
	leaf, err := createCert(&x509.Certificate{
		Subject:   pkix.Name{Organization: []string{"shoal"}, CommonName: etcdCommonName},
		NotBefore: now.Add(-time.Minute), NotAfter: ca.capExpiry(now.Add(etcdCertTTL)),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{id.URL()},
		DNSNames:    []string{"localhost"},
		IPAddresses: append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ips...),
	}, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: etcd tls dir: %w", err)
	}
	t := &EtcdTLS{
		CertFile: filepath.Join(dir, "etcd.crt"), KeyFile: filepath.Join(dir, "etcd.key"),
		TrustedCAFile: filepath.Join(dir, "root.crt"),
	}
	var chain bytes.Buffer
	for _, c := range []*x509.Certificate{leaf, ca.cert} {
		pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	if err := os.WriteFile(t.CertFile, chain.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if err := writePEM(t.KeyFile, "PRIVATE KEY", mustPKCS8(key), 0o600); err != nil {
		return nil, err
	}
	if err := writePEM(t.TrustedCAFile, "CERTIFICATE", ca.root.Raw, 0o644); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.root)
	t.Client = &tls.Config{
		MinVersion: tls.VersionTLS12, RootCAs: pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}},
	}
	return t, nil
}
