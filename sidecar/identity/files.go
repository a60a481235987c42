package identity

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Files names the PEM files an identity is kept in.
type Files struct {
	// Cert holds the SVID then the intermediates.
	Cert string
	// Key holds the private key (PKCS#8), mode 0600.
	Key string
	// Bundle holds the trust bundle's roots.
	Bundle string
}

// StateFiles are the files in a sidecar's --state-dir.
var StateFiles = Files{Cert: "identity/svid.pem", Key: "identity/key.pem", Bundle: "identity/bundle.pem"}

// FetchFiles are the files `shoal identity fetch --out DIR` writes, the
// names grpc-go's file_watcher certificate provider is usually given.
var FetchFiles = Files{Cert: "cert.pem", Key: "key.pem", Bundle: "ca.pem"}

// writeFiles writes an identity into dir, each file replaced atomically
// (written aside, then renamed) so that a reader never sees half a file.
// The key goes first, then the bundle, then the certificate: a watcher
// that reloads on the certificate's change finds the matching key.
func writeFiles(dir string, f Files, svid *x509svid.SVID, bundle *x509bundle.Bundle) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	var certPEM, bundlePEM []byte
	for _, c := range svid.Certificates {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	for _, c := range bundle.X509Authorities() {
		bundlePEM = append(bundlePEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	for _, w := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{f.Key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
		{f.Bundle, bundlePEM, 0o644},
		{f.Cert, certPEM, 0o644},
	} {
		if err := writeAtomic(filepath.Join(dir, w.name), w.data, w.mode); err != nil {
			return err
		}
	}
	return nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}

// loadFiles reads an identity written by writeFiles.
func loadFiles(dir string, f Files) (*x509svid.SVID, *x509bundle.Bundle, error) {
	svid, err := x509svid.Load(filepath.Join(dir, f.Cert), filepath.Join(dir, f.Key))
	if err != nil {
		if _, serr := os.Stat(filepath.Join(dir, f.Cert)); os.IsNotExist(serr) {
			return nil, nil, serr
		}
		return nil, nil, fmt.Errorf("identity: %w", err)
	}
	bundle, err := x509bundle.Load(svid.ID.TrustDomain(), filepath.Join(dir, f.Bundle))
	if err != nil {
		return nil, nil, fmt.Errorf("identity: %w", err)
	}
	return svid, bundle, nil
}
