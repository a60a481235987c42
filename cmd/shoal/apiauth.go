//go:build !shoal_slim

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	shoalidentity "github.com/shoal-mesh/shoal/identity"
)

// controlPlanePath is the path of the control plane's SPIFFE ID
// (spiffe://<td>/shoal/controlplane), which its serving certificate names.
const controlPlanePath = "/shoal/controlplane"

// authOptions returns the dial options for the credentials given: plain
// text without any (an API on loopback), else TLS verifying the control
// plane's certificate against --ca-bundle (or, with only a token, the root
// the token's fingerprint names), with the client certificate and the
// bearer token when given.
func (f *apiFlags) authOptions() ([]grpc.DialOption, error) {
	token := f.bearerToken()
	if f.plain() {
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, nil
	}
	var roots *x509.CertPool
	var pin string
	switch {
	case f.caBundle != "":
		pem, err := os.ReadFile(f.caBundle)
		if err != nil {
			return nil, fmt.Errorf("--ca-bundle: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-bundle %s: no PEM certificate in it", f.caBundle)
		}
	case token != "":
		tok, err := shoalidentity.ParseToken(token)
		if err != nil {
			return nil, fmt.Errorf("--token: %w", err)
		}
		pin = tok.RootFingerprint
	default:
		return nil, usageErrorf("--cert needs --ca-bundle (the mesh's root CA, ca.pem next to it from shoal ca issue-admin)")
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The control plane is verified by its SPIFFE ID rather than a host
		// name (it is reached by port-forwards and service names alike).
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyControlPlane(raw, roots, pin)
		},
	}
	if f.cert != "" {
		c, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	return opts, nil
}

// bearerToken is --token, else $SHOAL_TOKEN.
func (f *apiFlags) bearerToken() string {
	if f.token != "" {
		return f.token
	}
	return os.Getenv("SHOAL_TOKEN")
}

// plain reports whether calls go in plain text: no credentials and no CA.
func (f *apiFlags) plain() bool {
	return f.bearerToken() == "" && f.cert == "" && f.caBundle == ""
}

// verifyControlPlane checks the server's chain against roots, or against
// the root in the chain whose fingerprint is pin, and that the leaf is a
// shoal control plane's.
func verifyControlPlane(raw [][]byte, roots *x509.CertPool, pin string) error {
	var certs []*x509.Certificate
	for _, der := range raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("management API certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return errors.New("the management API sent no certificate")
	}
	if roots == nil {
		roots = x509.NewCertPool()
		for _, c := range certs {
			if shoalidentity.Fingerprint(c) == pin {
				roots.AddCert(c)
			}
		}
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("the management API's certificate is not from this mesh's CA (--ca-bundle, or the token's root): %w", err)
	}
	if id, err := x509svid.IDFromCert(certs[0]); err != nil || id.Path() != controlPlanePath {
		return fmt.Errorf("the server is not a shoal control plane (certificate ID %v)", id)
	}
	return nil
}

// bearer sends a token as "authorization: Bearer <token>" over TLS only.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }
