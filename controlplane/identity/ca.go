// Package identity is the control plane's certificate authority: it keeps
// the mesh CA (a root and an intermediate, ECDSA P-256), signs workload
// X.509-SVIDs from CSRs, manages join tokens in etcd and serves the
// IdentityService (ARCHITECTURE.md, "Contract: identity").
package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Lifetimes of the CA certificates `shoal ca init` writes.
const (
	RootTTL         = 10 * 365 * 24 * time.Hour
	IntermediateTTL = 365 * 24 * time.Hour
)

// File names in a CA directory.
const (
	RootCertFile = "root.crt"
	RootKeyFile  = "root.key"
	CACertFile   = "ca.crt"
	CAKeyFile    = "ca.key"
)

// CA signs with an intermediate; the root is only distributed as the
// trust bundle. Safe for concurrent use (immutable).
type CA struct {
	root   *x509.Certificate
	cert   *x509.Certificate // the intermediate
	key    crypto.Signer
	domain spiffeid.TrustDomain
}

// Init writes a new root (RootTTL) and an intermediate signed by it
// (IntermediateTTL) into dir, creating it (0700). It refuses to overwrite
// existing CA files. The root key can then be moved offline: only ca.crt,
// ca.key and root.crt are needed to run.
func Init(dir string, td spiffeid.TrustDomain, now time.Time) error {
	for _, f := range []string{RootCertFile, RootKeyFile, CACertFile, CAKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("identity: %s already exists; refusing to overwrite a CA", filepath.Join(dir, f))
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("identity: ca dir: %w", err)
	}
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	root, err := createCert(&x509.Certificate{
		Subject:   pkix.Name{Organization: []string{"shoal"}, CommonName: "shoal root CA " + td.Name()},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(RootTTL),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs: []*url.URL{td.ID().URL()},
	}, nil, &rootKey.PublicKey, rootKey)
	if err != nil {
		return err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	ca, err := createCert(&x509.Certificate{
		Subject:   pkix.Name{Organization: []string{"shoal"}, CommonName: "shoal intermediate CA " + td.Name()},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(IntermediateTTL),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs: []*url.URL{td.ID().URL()},
	}, root, &caKey.PublicKey, rootKey)
	if err != nil {
		return err
	}
	for _, w := range []struct {
		name, typ string
		der       []byte
		mode      os.FileMode
	}{
		{RootCertFile, "CERTIFICATE", root.Raw, 0o644},
		{CACertFile, "CERTIFICATE", ca.Raw, 0o644},
		{RootKeyFile, "PRIVATE KEY", mustPKCS8(rootKey), 0o600},
		{CAKeyFile, "PRIVATE KEY", mustPKCS8(caKey), 0o600},
	} {
		if err := writePEM(filepath.Join(dir, w.name), w.typ, w.der, w.mode); err != nil {
			return err
		}
	}
	return nil
}

// Load reads ca.crt, ca.key and root.crt from dir (root.key is not needed)
// and checks that they belong together.
func Load(dir string, td spiffeid.TrustDomain) (*CA, error) {
	root, err := readCert(filepath.Join(dir, RootCertFile))
	if err != nil {
		return nil, err
	}
	cert, err := readCert(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, err
	}
	key, err := readKey(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, err
	}
	if err := cert.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("identity: %s is not signed by %s: %w", CACertFile, RootCertFile, err)
	}
	if pub, ok := key.Public().(*ecdsa.PublicKey); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("identity: %s does not match %s", CAKeyFile, CACertFile)
	}
	return &CA{root: root, cert: cert, key: key, domain: td}, nil
}

// LoadOrInit loads the CA in dir, creating it first when dir has none
// (the dev CA under --data-dir). created reports whether it was created.
func LoadOrInit(dir string, td spiffeid.TrustDomain, now time.Time) (ca *CA, created bool, err error) {
	if _, err := os.Stat(filepath.Join(dir, CACertFile)); errors.Is(err, os.ErrNotExist) {
		if err := Init(dir, td, now); err != nil {
			return nil, false, err
		}
		created = true
	}
	ca, err = Load(dir, td)
	return ca, created, err
}

// Root returns the trust domain's root certificate.
func (ca *CA) Root() *x509.Certificate { return ca.root }

// Intermediate returns the signing certificate.
func (ca *CA) Intermediate() *x509.Certificate { return ca.cert }

// TrustDomain returns the CA's trust domain.
func (ca *CA) TrustDomain() spiffeid.TrustDomain { return ca.domain }

// SignSVID signs an X.509-SVID for id over pub, valid for ttl (capped at
// the intermediate's expiry). It returns the chain: the SVID, then the
// intermediate.
func (ca *CA) SignSVID(id spiffeid.ID, pub crypto.PublicKey, ttl time.Duration, now time.Time) ([]*x509.Certificate, error) {
	return ca.signSVID(id, "", pub, ttl, now)
}

// signSVID is SignSVID with a subject common name (empty for workloads).
func (ca *CA) signSVID(id spiffeid.ID, commonName string, pub crypto.PublicKey, ttl time.Duration, now time.Time) ([]*x509.Certificate, error) {
	if !id.MemberOf(ca.domain) {
		return nil, fmt.Errorf("identity: %s is not in trust domain %s", id, ca.domain)
	}
	if _, ok := pub.(*ecdsa.PublicKey); !ok {
		return nil, errors.New("identity: the CSR's key is not ECDSA")
	}
	// NotBefore is set back a little for clocks behind ours, by at most a
	// tenth of the lifetime: holders renew at half of NotAfter-NotBefore,
	// which a minute's backdating would pull to "now" for short TTLs.
	tmpl := &x509.Certificate{
		Subject:   pkix.Name{Organization: []string{"shoal"}, CommonName: commonName},
		NotBefore: now.Add(-min(time.Minute, ttl/10)), NotAfter: ca.capExpiry(now.Add(ttl)),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{id.URL()},
	}
	leaf, err := createCert(tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, err
	}
	return []*x509.Certificate{leaf, ca.cert}, nil
}

// ServingCert returns a fresh key and a certificate for the control
// plane's IdentityService (SPIFFE ID spiffe://<td>/shoal/controlplane),
// with the loopback and given IPs as IP SANs.
func (ca *CA) ServingCert(ttl time.Duration, now time.Time, ips ...net.IP) ([]*x509.Certificate, crypto.Signer, error) {
	return ca.ServingCertFor(ttl, now, nil, ips...)
}

// ServingCertFor is ServingCert with DNS names besides "localhost" (the
// names clients verify as host names: a Kubernetes Service's, for gRPC
// bootstraps that check the host name).
func (ca *CA) ServingCertFor(ttl time.Duration, now time.Time, dnsNames []string, ips ...net.IP) ([]*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	id, err := ControlPlaneID(ca.domain)
	if err != nil {
		return nil, nil, err
	}
	leaf, err := createCert(&x509.Certificate{
		Subject:   pkix.Name{Organization: []string{"shoal"}, CommonName: "shoal control plane"},
		NotBefore: now.Add(-time.Minute), NotAfter: ca.capExpiry(now.Add(ttl)),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		URIs:        []*url.URL{id.URL()},
		DNSNames:    append([]string{"localhost"}, dnsNames...),
		IPAddresses: append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ips...),
	}, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	return []*x509.Certificate{leaf, ca.cert, ca.root}, key, nil
}

// ControlPlaneID is the control plane's own SPIFFE ID.
func ControlPlaneID(td spiffeid.TrustDomain) (spiffeid.ID, error) {
	return spiffeid.FromSegments(td, "shoal", "controlplane")
}

func (ca *CA) capExpiry(t time.Time) time.Time {
	if t.After(ca.cert.NotAfter) {
		return ca.cert.NotAfter
	}
	return t
}

func createCert(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("identity: create certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

func mustPKCS8(k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err) // an ECDSA P-256 key always marshals
	}
	return der
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := readPEM(path, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(b)
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", path, err)
	}
	return c, nil
}

func readKey(path string) (crypto.Signer, error) {
	b, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("identity: %s: not a signing key", path)
	}
	return s, nil
}

func readPEM(path, typ string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != typ {
		return nil, fmt.Errorf("identity: %s: no PEM %s block", path, typ)
	}
	return blk.Bytes, nil
}
