package certfile

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/internal/testutil/tlstest"
)

// A replaced pair is served after the files change; while they are
// missing, the last good pair is; with nothing read yet, an error.
func TestKeyPairReloadsAndKeepsTheLastGood(t *testing.T) {
	dir := t.TempDir()
	kp := &KeyPair{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}
	if _, err := kp.Get(); err == nil {
		t.Fatal("Get without files: no error")
	}
	write := func(cn string) {
		c, k, _ := tlstest.SelfSigned(t, t.TempDir(), cn)
		for src, dst := range map[string]string{c: kp.CertFile, k: kp.KeyFile} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
			later := time.Now().Add(time.Duration(len(cn)) * time.Second) // a new mtime even within one clock tick
			os.Chtimes(dst, later, later)
		}
	}
	write("one")
	first, err := kp.Get()
	if err != nil || first.Leaf == nil && len(first.Certificate) == 0 {
		t.Fatalf("Get: %v", err)
	}
	write("second")
	second, err := kp.Get()
	if err != nil || string(second.Certificate[0]) == string(first.Certificate[0]) {
		t.Fatalf("after the files changed: same certificate (%v)", err)
	}
	os.Remove(kp.CertFile)
	if c, err := kp.Get(); err != nil || string(c.Certificate[0]) != string(second.Certificate[0]) {
		t.Fatalf("with the certificate file missing: %v, want the last good pair", err)
	}
}
