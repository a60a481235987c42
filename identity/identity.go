// Package identity holds what the control plane and workloads share about
// workload identity (ARCHITECTURE.md, "Contract: identity"): the SPIFFE ID
// scheme spiffe://<trust-domain>/ns/<namespace>/svc/<service>, the join
// token format, and root fingerprints used to pin the control plane's CA
// before a workload has its trust bundle.
package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Defaults of the identity contract.
const (
	DefaultTrustDomain = "shoal.local"
	DefaultNamespace   = "default"
)

// ServiceID returns spiffe://<td>/ns/<namespace>/svc/<service>; an empty
// namespace means DefaultNamespace.
func ServiceID(td spiffeid.TrustDomain, namespace, service string) (spiffeid.ID, error) {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	return spiffeid.FromSegments(td, "ns", namespace, "svc", service)
}

// ParseServiceID splits a workload SPIFFE ID into its namespace and
// service; it fails for IDs outside the scheme.
func ParseServiceID(id spiffeid.ID) (namespace, service string, err error) {
	parts := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "svc" {
		return "", "", fmt.Errorf("identity: %s is not of the form spiffe://<trust-domain>/ns/<namespace>/svc/<service>", id)
	}
	return parts[1], parts[3], nil
}

// Fingerprint is the SHA-256 of a certificate's DER, hex encoded.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// tokenPrefix marks shoal join tokens (and lets secret scanners find them).
const tokenPrefix = "shoaljt1"

// Token is a parsed join token: a random secret and the fingerprint of the
// trust domain's root, so that the token alone lets a workload verify the
// control plane it hands the token to.
type Token struct {
	// Secret is the random part; only its hash is stored.
	Secret string
	// RootFingerprint is Fingerprint of the root CA certificate.
	RootFingerprint string
}

// NewToken returns a token with a fresh 256-bit secret.
func NewToken(root *x509.Certificate) Token {
	b := make([]byte, 32)
	rand.Read(b)
	return Token{Secret: base64.RawURLEncoding.EncodeToString(b), RootFingerprint: Fingerprint(root)}
}

// String returns the token's wire form: shoaljt1.<secret>.<fingerprint>.
func (t Token) String() string { return tokenPrefix + "." + t.Secret + "." + t.RootFingerprint }

// Hash is what the control plane stores for the token: the SHA-256 of
// the secret, hex encoded.
func (t Token) Hash() string {
	sum := sha256.Sum256([]byte(t.Secret))
	return hex.EncodeToString(sum[:])
}

// ErrBadToken is returned by ParseToken for a malformed token.
var ErrBadToken = errors.New("identity: malformed join token (want shoaljt1.<secret>.<root fingerprint>)")

// ParseToken parses a token's wire form; surrounding white space (a
// trailing newline in a token file) is ignored.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 || parts[0] != tokenPrefix || len(parts[1]) < 32 || len(parts[2]) != 64 {
		return Token{}, ErrBadToken
	}
	if _, err := hex.DecodeString(parts[2]); err != nil {
		return Token{}, ErrBadToken
	}
	return Token{Secret: parts[1], RootFingerprint: parts[2]}, nil
}

// AdminNamespace and AdminService name the admin identity of the
// management API: spiffe://<td>/ns/shoal-system/svc/admin.
const (
	AdminNamespace = "shoal-system"
	AdminService   = "admin"
)

// AdminID is the SPIFFE ID whose certificate may do everything on the
// management API (`shoal ca issue-admin`).
func AdminID(td spiffeid.TrustDomain) (spiffeid.ID, error) {
	return ServiceID(td, AdminNamespace, AdminService)
}
