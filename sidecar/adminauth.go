package sidecar

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/shoal-mesh/shoal/identity"
	"github.com/shoal-mesh/shoal/internal/adminauth"
)

// guardAdmin wraps the admin listener and handler when --admin-listen is
// beyond loopback (issue 14): /metrics, /ready and /healthz stay open;
// with an identity the rest is served over TLS (the SVID, sniffed on the
// same port) to the admin SVID, without one to loopback peers only.
func (p *Proxy) guardAdmin(l net.Listener, h http.Handler) (net.Listener, http.Handler) {
	if !adminauth.Beyond(p.cfg.AdminListen) {
		return l, h
	}
	if p.id == nil {
		p.log.Warn("admin listener beyond loopback without an identity: only /metrics, /ready and /healthz are served beyond loopback", "admin", l.Addr())
		return adminauth.Listener(l, nil), adminauth.Handler(h, nil)
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: tlsconfig.GetCertificate(p.id),
		// Verified by authorizeAdmin against the trust bundle: probes and
		// scrapes over TLS come without a certificate.
		ClientAuth: tls.RequestClientCert,
	}
	return adminauth.Listener(l, cfg), adminauth.Handler(h, p.authorizeAdmin)
}

// authorizeAdmin admits the admin SVID (shoal ca issue-admin) over TLS.
func (p *Proxy) authorizeAdmin(r *http.Request) error {
	st := adminauth.TLSState(r)
	if st == nil || len(st.PeerCertificates) == 0 {
		return errors.New("connect with TLS (https://) and present the admin certificate (shoal ca issue-admin)")
	}
	id, _, err := x509svid.Verify(st.PeerCertificates, p.id)
	if err != nil {
		return fmt.Errorf("client certificate: %v", err)
	}
	want, err := identity.AdminID(p.id.ID().TrustDomain())
	if err != nil {
		return err
	}
	if id != want {
		return fmt.Errorf("%s is not the admin identity %s", id, want)
	}
	return nil
}
