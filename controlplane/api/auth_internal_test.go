package api

import "testing"

// Methods added later (a PolicyService's Apply, say) need the admin role
// unless they only read.
func TestReadOnlyMethods(t *testing.T) {
	for m, want := range map[string]bool{
		"/shoal.v1.RouteService/ListRoutes":        true,
		"/shoal.v1.RouteService/GetRoute":          true,
		"/shoal.v1.RouteService/WatchRoutes":       true,
		"/shoal.v1.RegistryService/ListInstances":  true,
		"/shoal.v1.MeshService/Status":             true,
		"/shoal.v1.MeshService/Traffic":            true,
		"/shoal.drain.v1.DrainService/WaitRemoved": true,
		"/shoal.v1.PolicyService/ListPolicies":     true,
		"/shoal.v1.RouteService/CreateRoute":       false,
		"/shoal.v1.RouteService/UpdateRoute":       false,
		"/shoal.v1.RouteService/DeleteRoute":       false,
		"/shoal.v1.TokenService/CreateToken":       false,
		"/shoal.v1.PolicyService/ApplyPolicy":      false,
		"/shoal.v1.RegistryService/Register":       false,
		"/other.v1.Thing/GetSecret":                false,
		"garbage":                                  false,
	} {
		if got := readOnly(m); got != want {
			t.Errorf("readOnly(%s) = %v, want %v", m, got, want)
		}
	}
}
