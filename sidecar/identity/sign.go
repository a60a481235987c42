package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/identity"
	identityv1 "github.com/shoal-mesh/shoal/proto/shoal/identity/v1"
)

// controlPlanePath is the path of the control plane's SPIFFE ID
// (spiffe://<trust-domain>/shoal/controlplane).
const controlPlanePath = "/shoal/controlplane"

// sign asks the IdentityService for an SVID over key: with cur as the TLS
// client certificate when set (renewal), else with the join token.
func (c *Client) sign(ctx context.Context, key *ecdsa.PrivateKey, cur *x509svid.SVID) (*x509svid.SVID, *x509bundle.Bundle, error) {
	tmpl := &x509.CertificateRequest{}
	if c.cfg.ID != "" {
		u, err := url.Parse(c.cfg.ID)
		if err != nil {
			return nil, nil, fmt.Errorf("identity: ID %q: %w", c.cfg.ID, err)
		}
		tmpl.URIs = []*url.URL{u}
	}
	csr, err := x509.CreateCertificateRequest(nil, tmpl, key)
	if err != nil {
		return nil, nil, err
	}
	tcfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The control plane is verified below against the pinned roots:
		// its address may be anything the workload was told (an IP, a
		// Service name), so no host name check applies.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: c.verifyControlPlane(cur),
	}
	req := &identityv1.SignRequest{Csr: csr, Instance: c.cfg.Instance}
	if cur != nil {
		tcfg.Certificates = []tls.Certificate{tlsCert(cur)}
	} else {
		req.JoinToken = c.cfg.Token
	}
	conn, err := grpc.NewClient(c.cfg.Server, grpc.WithTransportCredentials(credentials.NewTLS(tcfg)))
	if err != nil {
		return nil, nil, fmt.Errorf("identity: %w", err)
	}
	defer conn.Close()
	resp, err := identityv1.NewIdentityServiceClient(conn).Sign(ctx, req)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: sign: %w", err)
	}
	return parseResponse(resp, key)
}

// verifyControlPlane checks the control plane's chain against the roots
// it may have: the current bundle when renewing, else --ca-bundle, else
// the root in the presented chain whose fingerprint the token carries.
func (c *Client) verifyControlPlane(cur *x509svid.SVID) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		certs := make([]*x509.Certificate, 0, len(raw))
		for _, r := range raw {
			cert, err := x509.ParseCertificate(r)
			if err != nil {
				return fmt.Errorf("identity: control plane certificate: %w", err)
			}
			certs = append(certs, cert)
		}
		if len(certs) == 0 {
			return errors.New("identity: the control plane sent no certificate")
		}
		roots := x509.NewCertPool()
		switch b := c.bundle.Load(); {
		case cur != nil && b != nil:
			for _, r := range b.X509Authorities() {
				roots.AddCert(r)
			}
		case len(c.cfg.CABundle) > 0:
			for _, r := range c.cfg.CABundle {
				roots.AddCert(r)
			}
		default:
			tok, err := identity.ParseToken(c.cfg.Token)
			if err != nil {
				return err
			}
			found := false
			for _, cert := range certs {
				if identity.Fingerprint(cert) == tok.RootFingerprint {
					roots.AddCert(cert)
					found = true
				}
			}
			if !found {
				return errors.New("identity: the control plane's chain has no root with the join token's fingerprint (wrong control plane or a token of another mesh)")
			}
		}
		inter := x509.NewCertPool()
		for _, cert := range certs[1:] {
			inter.AddCert(cert)
		}
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return fmt.Errorf("identity: control plane certificate: %w", err)
		}
		id, err := x509svid.IDFromCert(certs[0])
		if err != nil || id.Path() != controlPlanePath {
			return fmt.Errorf("identity: the server is not a shoal control plane (certificate ID %v)", id)
		}
		return nil
	}
}

func parseResponse(resp *identityv1.SignResponse, key *ecdsa.PrivateKey) (*x509svid.SVID, *x509bundle.Bundle, error) {
	var chain []*x509.Certificate
	for _, der := range resp.GetCertChain() {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, fmt.Errorf("identity: SVID: %w", err)
		}
		chain = append(chain, cert)
	}
	if len(chain) == 0 {
		return nil, nil, errors.New("identity: the control plane returned no certificate")
	}
	if pub, ok := chain[0].PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, nil, errors.New("identity: the SVID is not for our key")
	}
	id, err := x509svid.IDFromCert(chain[0])
	if err != nil {
		return nil, nil, fmt.Errorf("identity: SVID: %w", err)
	}
	var roots []*x509.Certificate
	for _, der := range resp.GetTrustBundle() {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, fmt.Errorf("identity: trust bundle: %w", err)
		}
		roots = append(roots, cert)
	}
	return &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key},
		x509bundle.FromX509Authorities(id.TrustDomain(), roots), nil
}

func tlsCert(s *x509svid.SVID) tls.Certificate {
	c := tls.Certificate{PrivateKey: s.PrivateKey, Leaf: s.Certificates[0]}
	for _, cert := range s.Certificates {
		c.Certificate = append(c.Certificate, cert.Raw)
	}
	return c
}

// isPermanent reports errors retrying cannot fix: a token refused or for
// another identity, a control plane that is not ours.
func isPermanent(err error) bool {
	switch status.Code(err) {
	case codes.PermissionDenied, codes.InvalidArgument, codes.Unauthenticated:
		return true
	}
	return strings.Contains(err.Error(), "fingerprint")
}
