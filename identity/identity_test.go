package identity_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/shoal-mesh/shoal/identity"
)

func TestTokenRoundTripsAndCarriesTheRootFingerprint(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(der)
	tok := identity.NewToken(root)
	got, err := identity.ParseToken(tok.String() + "\n") // as read from a token file
	if err != nil {
		t.Fatalf("ParseToken(%q): %v", tok, err)
	}
	if got != tok || got.RootFingerprint != identity.Fingerprint(root) {
		t.Fatalf("ParseToken = %+v, want %+v", got, tok)
	}
	if tok.Hash() == tok.Secret || strings.Contains(tok.Hash(), tok.Secret) {
		t.Fatal("the stored hash reveals the secret")
	}
	if identity.NewToken(root).Secret == tok.Secret {
		t.Fatal("two tokens share a secret")
	}
}

func TestParseTokenRejectsMalformed(t *testing.T) {
	for _, s := range []string{"", "shoaljt1", "shoaljt1.short.abcd", "other." + strings.Repeat("a", 43) + "." + strings.Repeat("0", 64),
		"shoaljt1." + strings.Repeat("a", 43) + "." + strings.Repeat("z", 64)} {
		if _, err := identity.ParseToken(s); !errors.Is(err, identity.ErrBadToken) {
			t.Errorf("ParseToken(%q) = %v, want ErrBadToken", s, err)
		}
	}
}

func TestServiceIDScheme(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("shoal.local")
	id, err := identity.ServiceID(td, "", "orders")
	if err != nil || id.String() != "spiffe://shoal.local/ns/default/svc/orders" {
		t.Fatalf("ServiceID = %v, %v", id, err)
	}
	ns, svc, err := identity.ParseServiceID(id)
	if err != nil || ns != "default" || svc != "orders" {
		t.Fatalf("ParseServiceID = %q %q %v", ns, svc, err)
	}
	if _, _, err := identity.ParseServiceID(spiffeid.RequireFromString("spiffe://shoal.local/shoal/controlplane")); err == nil {
		t.Fatal("the control plane's ID parsed as a workload ID")
	}
}
