package xds

import (
	"cmp"
	"slices"
	"strings"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// DuplicateRegistrations returns the addresses (host:port) that more than
// one instance of a service registered (e.g. the app through the npm
// package and its sidecar on its behalf), sorted by service and address,
// each with the instance the translation serves: the same choice as
// indexEndpoints (a routable instance before others, then the lowest id),
// so a duplicate's metadata, such as the labels a route subset selects on,
// is that instance's only. It neither modifies nor retains eps.
func DuplicateRegistrations(eps []registry.Endpoint) []*shoalv1.DuplicateRegistration {
	type group struct {
		ids  []string
		kept string
	}
	groups := map[string]*group{}
	var order []string
	seenID := map[string]bool{}
	for _, ep := range preferenceOrder(eps) {
		addr, id := ep.Service+"|"+ep.HostPort(), ep.Service+"/"+ep.ID
		g := groups[addr]
		if g == nil {
			g = &group{}
			groups[addr] = g
			order = append(order, addr)
		}
		g.ids = append(g.ids, ep.ID)
		if g.kept == "" && !seenID[id] {
			g.kept = ep.ID
		}
		seenID[id] = true
	}
	var out []*shoalv1.DuplicateRegistration
	for _, key := range order {
		g := groups[key]
		if len(g.ids) < 2 {
			continue
		}
		slices.Sort(g.ids)
		svc, addr, _ := strings.Cut(key, "|")
		out = append(out, &shoalv1.DuplicateRegistration{Service: svc, Address: addr, InstanceIds: g.ids, KeptInstanceId: g.kept})
	}
	slices.SortFunc(out, func(a, b *shoalv1.DuplicateRegistration) int {
		return cmp.Or(cmp.Compare(a.GetService(), b.GetService()), cmp.Compare(a.GetAddress(), b.GetAddress()))
	})
	return out
}
