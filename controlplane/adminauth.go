package controlplane

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/shoal-mesh/shoal/controlplane/api"
	shoalidentity "github.com/shoal-mesh/shoal/identity"
	"github.com/shoal-mesh/shoal/internal/adminauth"
)

// authorizeAdmin admits a request from beyond loopback to a closed path of
// the admin port (issue 14): over TLS, with the admin SVID as client
// certificate or an admin bearer token of the management API.
func (s *Server) authorizeAdmin(r *http.Request) error {
	st := adminauth.TLSState(r)
	if st == nil {
		return errors.New("connect with TLS (https://) and present the admin certificate (shoal ca issue-admin) or an admin token")
	}
	if len(st.VerifiedChains) > 0 && len(st.VerifiedChains[0]) > 0 {
		id, err := x509svid.IDFromCert(st.VerifiedChains[0][0])
		want, _ := shoalidentity.AdminID(s.identity.TrustDomain())
		if err == nil && id == want {
			return nil
		}
		if err == nil {
			return fmt.Errorf("%s is not the admin identity %s", id, want)
		}
	}
	auth := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || tok == "" {
		return errors.New("no admin certificate and no bearer token")
	}
	role, err := s.identity.APITokenRole(r.Context(), strings.TrimSpace(tok))
	if err != nil {
		return errors.New("unknown or expired token")
	}
	if role != api.RoleAdmin {
		return fmt.Errorf("a %s token may not use the admin port", role)
	}
	return nil
}
