package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
)

// validator is what every generated Envoy message implements.
type validator interface{ ValidateAll() error }

// Check reports whether r is safe to serve: every resource (and every
// HTTP connection manager inside a listener) passes ValidateAll, names are
// unique, no domain is in two virtual hosts of one route configuration
// (Envoy NACKs that), and the set is consistent — every RDS name a listener reads, every
// cluster a route names and every load assignment an EDS cluster reads
// exists.
func (r *Resources) Check() error {
	var errs []error
	names := make(map[string]map[string]bool)
	for typ, rs := range r.ByType() {
		names[typ] = make(map[string]bool)
		for _, res := range rs {
			name := cache.GetResourceName(res)
			if names[typ][name] {
				errs = append(errs, fmt.Errorf("xds: duplicate %s %q", typ, name))
			}
			names[typ][name] = true
			if v, ok := res.(validator); !ok {
				errs = append(errs, fmt.Errorf("xds: %s %q cannot be validated", typ, name))
			} else if err := v.ValidateAll(); err != nil {
				errs = append(errs, fmt.Errorf("xds: %s %q: %w", typ, name, err))
			}
		}
	}
	need := func(typ, name, by string) {
		if !names[typ][name] {
			errs = append(errs, fmt.Errorf("xds: %s %q referenced by %s is missing", typ, name, by))
		}
	}
	for _, res := range r.Listeners {
		hcm, err := listenerManager(res.(*listenerv3.Listener))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if rds := hcm.GetRds(); rds != nil {
			need(routeType, rds.GetRouteConfigName(), "listener "+cache.GetResourceName(res))
		}
	}
	for _, res := range r.Routes {
		if err := uniqueDomains(res.(*routev3.RouteConfiguration)); err != nil {
			errs = append(errs, err)
		}
		for _, c := range routeClusters(res.(*routev3.RouteConfiguration)) {
			need(clusterType, c, "route configuration "+cache.GetResourceName(res))
		}
	}
	for _, res := range r.Clusters {
		c := res.(*clusterv3.Cluster)
		need(endpointType, c.GetEdsClusterConfig().GetServiceName(), "cluster "+c.GetName())
	}
	return errors.Join(errs...)
}

// listenerManager unpacks and validates a listener's HTTP connection
// manager (ValidateAll does not look inside Any).
func listenerManager(l *listenerv3.Listener) (*hcmv3.HttpConnectionManager, error) {
	a := l.GetApiListener().GetApiListener()
	if a == nil {
		a = l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig()
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := a.UnmarshalTo(hcm); err != nil {
		return nil, fmt.Errorf("xds: listener %q: %w", l.GetName(), err)
	}
	if err := hcm.ValidateAll(); err != nil {
		return nil, fmt.Errorf("xds: listener %q: http connection manager: %w", l.GetName(), err)
	}
	return hcm, nil
}

// uniqueDomains fails if a domain is in two virtual hosts of rc.
func uniqueDomains(rc *routev3.RouteConfiguration) error {
	owner := make(map[string]string)
	for _, vh := range rc.GetVirtualHosts() {
		for _, d := range vh.GetDomains() {
			if o, ok := owner[d]; ok {
				return fmt.Errorf("xds: route configuration %q: domain %q is in virtual hosts %q and %q", rc.GetName(), d, o, vh.GetName())
			}
			owner[d] = vh.GetName()
		}
	}
	return nil
}

func routeClusters(rc *routev3.RouteConfiguration) []string {
	var out []string
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if c := r.GetRoute().GetCluster(); c != "" {
				out = append(out, c)
			}
			for _, wc := range r.GetRoute().GetWeightedClusters().GetClusters() {
				out = append(out, wc.GetName())
			}
		}
	}
	return out
}

// HashResource is a resource's content version: a hash of its
// deterministic encoding, equal on every control plane.
func HashResource(r types.Resource) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		panic("xds: marshal " + err.Error()) // broken invariant: our own messages
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
