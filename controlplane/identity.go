package controlplane

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/shoal-mesh/shoal/controlplane/identity"
	shoalidentity "github.com/shoal-mesh/shoal/identity"
)

// loadCA loads the CA from CADir, or the dev CA under DataDir (created on
// first start).
func (s *Server) loadCA() (*identity.CA, error) {
	tdName := s.cfg.TrustDomain
	if tdName == "" {
		tdName = shoalidentity.DefaultTrustDomain
	}
	td, err := spiffeid.TrustDomainFromString(tdName)
	if err != nil {
		return nil, fmt.Errorf("controlplane: --trust-domain %q: %w", tdName, err)
	}
	var ca *identity.CA
	if s.cfg.CADir != "" {
		if ca, err = identity.Load(s.cfg.CADir, td); err != nil {
			return nil, fmt.Errorf("controlplane: --ca-dir: %w", err)
		}
	} else {
		dir := s.cfg.DataDir
		if dir == "" {
			dir = "shoal-data"
		}
		dir = filepath.Join(dir, "ca")
		var created bool
		if ca, created, err = identity.LoadOrInit(dir, td, time.Now()); err != nil {
			return nil, fmt.Errorf("controlplane: dev CA: %w", err)
		}
		if created {
			s.log.Warn("created a development CA: its root key is on this disk; use `shoal ca init` and --ca-dir in production",
				"dir", dir, "trust_domain", td.Name(), "root_fingerprint", shoalidentity.Fingerprint(ca.Root()))
		}
	}
	s.log.Info("identity CA loaded", "trust_domain", td.Name(), "intermediate_expires", ca.Intermediate().NotAfter,
		"svid_ttl", s.svidTTL())
	return ca, nil
}

// newIdentity returns the IdentityService over the loaded CA.
func (s *Server) newIdentity() (*identity.Service, error) {
	return identity.NewService(identity.ServiceConfig{
		CA: s.ca, Tokens: identity.NewTokenStore(s.client), SVIDTTL: s.svidTTL(), Logger: s.log,
		ServingNames: s.servingNames(),
	})
}

func (s *Server) svidTTL() time.Duration {
	if s.cfg.SVIDTTL == 0 {
		return identity.DefaultSVIDTTL
	}
	return s.cfg.SVIDTTL
}

// servingNames are the extra SANs of the serving certificate: the specific
// IPs the xDS and API ports bind, and Config.TLSNames.
func (s *Server) servingNames() []string {
	var names []string
	for _, ip := range listenIPs(s.cfg.XDSListen, s.cfg.APIListen) {
		names = append(names, ip.String())
	}
	return append(names, s.cfg.TLSNames...)
}
