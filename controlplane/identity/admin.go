package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/shoal-mesh/shoal/identity"
)

// DefaultAdminTTL is the lifetime of `shoal ca issue-admin` certificates.
const DefaultAdminTTL = 30 * 24 * time.Hour

// Files WriteAdmin writes (the layout of `shoal identity fetch`).
const (
	CertFile   = "cert.pem"
	KeyFile    = "key.pem"
	BundleFile = "ca.pem"
)

// AdminCommonName is the subject CN of admin certificates. The embedded
// etcd admits client certificates of the mesh CA by CN (EtcdCommonNames):
// the admin's and the control plane's, never a workload SVID (no CN).
const AdminCommonName = "shoal admin"

// WriteAdmin writes a new key and a certificate for the admin identity
// (spiffe://<td>/ns/shoal-system/svc/admin) valid for ttl into dir:
// cert.pem (the certificate and the intermediate), key.pem (0600) and
// ca.pem (the root). It returns the identity.
func (ca *CA) WriteAdmin(dir string, ttl time.Duration, now time.Time) (spiffeid.ID, error) {
	id, err := identity.AdminID(ca.domain)
	if err != nil {
		return spiffeid.ID{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return spiffeid.ID{}, err
	}
	chain, err := ca.signSVID(id, AdminCommonName, &key.PublicKey, ttl, now)
	if err != nil {
		return spiffeid.ID{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return spiffeid.ID{}, fmt.Errorf("identity: %w", err)
	}
	var certs bytes.Buffer
	for _, c := range chain {
		pem.Encode(&certs, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	if err := os.WriteFile(filepath.Join(dir, CertFile), certs.Bytes(), 0o644); err != nil {
		return spiffeid.ID{}, fmt.Errorf("identity: %w", err)
	}
	if err := writePEM(filepath.Join(dir, KeyFile), "PRIVATE KEY", mustPKCS8(key), 0o600); err != nil {
		return spiffeid.ID{}, err
	}
	if err := writePEM(filepath.Join(dir, BundleFile), "CERTIFICATE", ca.root.Raw, 0o644); err != nil {
		return spiffeid.ID{}, err
	}
	return id, nil
}
