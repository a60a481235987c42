package xdstable

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/internal/xdswire"
	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/builtin"
	"github.com/shoal-mesh/shoal/sidecar/route"
	"github.com/shoal-mesh/shoal/sidecar/xdsclient"
)

// LocalAppCluster is the cluster the inbound listener routes to; the
// sidecar defines it from --app-port (the xDS contract leaves it to the
// proxy: only the proxy knows its app).
const LocalAppCluster = "local_app"

// Options tune Build.
type Options struct {
	// RouteConfig is the RouteConfiguration to serve ("outbound" for a
	// sidecar, "gateway" for the gateway).
	RouteConfig string
	// LocalApp, if set, is added as the LocalAppCluster cluster.
	LocalApp *route.Endpoint
	// LocalAppProtocol is the local app's protocol.
	LocalAppProtocol route.Protocol
	// Loads keeps in-flight counters across tables (proxy.Loads()).
	Loads *route.Loads
	// Gossip reports what this proxy's gossip view says of an instance.
	// Nil means gossip knows nothing. It is called during Build only.
	Gossip func(service, instanceID string) Verdict
	// ServerID returns the SPIFFE ID an endpoint of service must present
	// over mTLS (route.Endpoint.ServerID), given whether the control plane
	// marks the endpoint as mTLS; "" means plain. Nil means plain for all.
	// It is called during Build only.
	ServerID func(service string, mtls bool) string
}

// Build compiles snap into a routing table. Resources the table cannot
// express are skipped with an error listing them; the table is still
// returned (a partial table beats none).
func Build(snap *xdsclient.Snapshot, o Options) (*route.Table, error) {
	cfg := route.Config{Loads: o.Loads}
	var errs []string
	if snap != nil {
		cfg.Version = snapVersion(snap)
		if rc := snap.Routes[o.RouteConfig]; rc != nil {
			cfg.VirtualHosts = virtualHosts(rc, &errs)
		}
		for _, name := range sortedKeys(snap.Clusters) {
			cc, err := cluster(snap.Clusters[name], snap.Endpoints, o)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			cfg.Clusters = append(cfg.Clusters, cc)
		}
	}
	if o.LocalApp != nil {
		cfg.Clusters = append(cfg.Clusters, route.ClusterConfig{
			Name: LocalAppCluster, Protocol: o.LocalAppProtocol, Endpoints: []route.Endpoint{*o.LocalApp},
			// The local app is the only endpoint: never eject it.
			Outlier: route.OutlierDetection{Disabled: true},
		})
	}
	t, err := route.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("xdstable: %w", err)
	}
	if len(errs) > 0 {
		return t, fmt.Errorf("xdstable: skipped: %s", strings.Join(errs, "; "))
	}
	return t, nil
}

func snapVersion(s *xdsclient.Snapshot) string {
	keys := sortedKeys(s.Versions)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k[strings.LastIndexByte(k, '.')+1:]+"="+s.Versions[k])
	}
	return strings.Join(parts, ",")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// cluster converts one Cluster and its ClusterLoadAssignment.
func cluster(c *xdswire.Cluster, clas map[string]*xdswire.ClusterLoadAssignment, o Options) (route.ClusterConfig, error) {
	if c == nil {
		return route.ClusterConfig{}, errors.New("cluster: empty")
	}
	cc := route.ClusterConfig{
		Name:           c.Name,
		ConnectTimeout: c.ConnectTimeout.Std(),
		Outlier:        outlier(c.OutlierDetection),
	}
	b, lbcfg, err := lbPolicy(c)
	if err != nil {
		return cc, fmt.Errorf("cluster %q: %w", c.Name, err)
	}
	cc.LB, cc.LBConfig = b, lbcfg
	if cb := c.CircuitBreakers; cb != nil {
		for _, th := range cb.Thresholds {
			if th.Priority == xdswire.PriorityDefault && th.MaxRequests != nil {
				cc.MaxRequests = int(*th.MaxRequests)
			}
		}
	}
	if usesHTTP2(c) {
		cc.Protocol = route.HTTP2
	}
	claName := ""
	if e := c.EDSClusterConfig; e != nil {
		claName = e.ServiceName
	}
	if claName == "" {
		claName = c.Name
	}
	service := claName
	if i := strings.IndexByte(service, '['); i >= 0 {
		service = service[:i] // a subset: "orders[version=v2]"
	}
	var serverID func(*xdswire.LBEndpoint) string
	if o.ServerID != nil {
		serverID = func(le *xdswire.LBEndpoint) string { return o.ServerID(service, endpointMTLS(c, le)) }
	}
	cc.Endpoints = endpoints(clas[claName], service, o.Gossip, serverID)
	return cc, nil
}

func lbPolicy(c *xdswire.Cluster) (lb.Builder, lb.Config, error) {
	cfg := lb.DefaultConfig()
	if cl := c.CommonLBConfig; cl != nil && cl.HealthyPanicThreshold != nil {
		cfg.PanicThreshold = cl.HealthyPanicThreshold.Value
	}
	var name string
	switch c.LBPolicy {
	case xdswire.LBRoundRobin:
		name = lb.RoundRobin
	case xdswire.LBLeastRequest:
		name = lb.LeastRequest
		if lr := c.LeastRequestLBConfig; lr != nil && lr.ChoiceCount != nil {
			cfg.LeastRequest.ChoiceCount = int(*lr.ChoiceCount)
		}
	case xdswire.LBRingHash:
		name = lb.RingHash
		// Deliberate deviation from Envoy's ring sizing: every endpoint gets
		// RingHashesPerWeight entries per unit of weight whatever the other
		// endpoints are, so when one of N endpoints leaves only its own keys
		// move (about 1/N). Envoy's sizing spreads the ring anew and moves
		// about 41 % of keys when one of three leaves. Sidecars agree among
		// themselves; a key may map differently in Envoy.
		cfg.RingHash.HashesPerWeight = RingHashesPerWeight
		if rc := c.RingHashLBConfig; rc != nil {
			if v := rc.MinimumRingSize; v != nil {
				cfg.RingHash.MinRingSize = *v
			}
			if v := rc.MaximumRingSize; v != nil {
				cfg.RingHash.MaxRingSize = *v
			}
		}
	case xdswire.LBMaglev:
		name = lb.Maglev
	case xdswire.LBRandom:
		name = lb.Random
	default:
		return nil, cfg, fmt.Errorf("lb_policy %s is not supported", c.LBPolicy)
	}
	b, err := builtin.Builder(name)
	return b, cfg, err
}

func usesHTTP2(c *xdswire.Cluster) bool {
	o := c.TypedExtensionProtocolOptions[xdswire.HTTPProtocolOptionsKey]
	return o != nil && o.ExplicitHTTPConfig != nil && o.ExplicitHTTPConfig.HTTP2ProtocolOptions != nil
}

func outlier(od *xdswire.OutlierDetection) route.OutlierDetection {
	if od == nil {
		return route.OutlierDetection{Disabled: true}
	}
	return route.OutlierDetection{
		Consecutive5xx:             u32(od.Consecutive5xx),
		ConsecutiveConnectFailures: u32(od.ConsecutiveGatewayFailure),
		BaseEjectionTime:           od.BaseEjectionTime.Std(),
		MaxEjectionTime:            od.MaxEjectionTime.Std(),
		MaxEjectionPercent:         u32(od.MaxEjectionPercent),
	}
}

// u32 reads an optional UInt32Value as an int (0 when unset).
func u32(p *uint32) int {
	if p == nil {
		return 0
	}
	return int(*p)
}

// Verdict is the local gossip view of one instance.
type Verdict uint8

// Verdicts.
const (
	// VerdictUnknown: gossip has never seen the instance; etcd's word (EDS)
	// decides.
	VerdictUnknown Verdict = iota
	// VerdictRoutable: alive and passing its health check.
	VerdictRoutable
	// VerdictSuspect: its host is suspected by the failure detector. Soft:
	// out of rotation while other instances can take the traffic.
	VerdictSuspect
	// VerdictOut: failing its health check, dead or gone. Hard.
	VerdictOut
)

// endpoints flattens a CLA's localities. An endpoint is healthy when EDS
// says HEALTHY or UNKNOWN and gossip has not taken it out of rotation.
//
// Suspicion is soft evidence: a loaded host can miss a probe and be
// suspected for a moment. When the overlay would leave no healthy endpoint
// at all, endpoints that are out only on soft evidence (suspected here, or
// unhealthy in EDS while this proxy's gossip sees them alive or suspect)
// are kept in rotation: trying them beats answering 502 for sure, and the
// proxy's retries and outlier detection handle a real failure.
func endpoints(cla *xdswire.ClusterLoadAssignment, service string, gossip func(string, string) Verdict, serverID func(*xdswire.LBEndpoint) string) []route.Endpoint {
	if cla == nil {
		return nil
	}
	var out []route.Endpoint
	var soft []int
	anyHealthy := false
	for _, loc := range cla.Endpoints {
		for _, le := range loc.LBEndpoints {
			if le.Endpoint == nil || le.Endpoint.Address == nil || le.Endpoint.Address.SocketAddress == nil {
				continue
			}
			sa := le.Endpoint.Address.SocketAddress
			id := le.Endpoint.Hostname
			v := VerdictUnknown
			if gossip != nil && id != "" {
				v = gossip(service, id)
			}
			hs := le.HealthStatus
			edsOK := hs == xdswire.HealthHealthy || hs == xdswire.HealthUnknown
			healthy := edsOK && (v == VerdictUnknown || v == VerdictRoutable)
			if !healthy && hs != xdswire.HealthDraining && v != VerdictOut &&
				(v == VerdictSuspect || (hs == xdswire.HealthUnhealthy && v == VerdictRoutable)) {
				soft = append(soft, len(out))
			}
			anyHealthy = anyHealthy || healthy
			var weight uint32
			if le.LoadBalancingWeight != nil {
				weight = *le.LoadBalancingWeight
			}
			ep := route.Endpoint{
				Address:  joinHostPort(sa.Address, sa.PortValue),
				Weight:   weight,
				Healthy:  healthy,
				Metadata: service + "/" + id,
			}
			if serverID != nil {
				ep.ServerID = serverID(&le)
			}
			out = append(out, ep)
		}
	}
	if !anyHealthy {
		for _, i := range soft {
			out[i].Healthy = true
		}
	}
	return out
}

func joinHostPort(host string, port uint32) string {
	if strings.IndexByte(host, ':') >= 0 {
		return fmt.Sprintf("[%s]:%d", host, port)
	}
	return fmt.Sprintf("%s:%d", host, port)
}

// RingHashesPerWeight is the ring entries an endpoint gets per unit of
// weight in ring-hash clusters (see lbPolicy).
const RingHashesPerWeight = 160

// DefaultRouteTimeout is Envoy's route timeout when none is set.
const DefaultRouteTimeout = 15 * time.Second

func virtualHosts(rc *xdswire.RouteConfiguration, errs *[]string) []route.VirtualHost {
	var out []route.VirtualHost
	for _, vh := range rc.VirtualHosts {
		v := route.VirtualHost{Name: vh.Name, Domains: vh.Domains}
		for i := range vh.Routes {
			r := &vh.Routes[i]
			rt, err := convertRoute(r)
			if err != nil {
				*errs = append(*errs, fmt.Sprintf("route %q in virtual host %q: %v", r.Name, vh.Name, err))
				continue
			}
			v.Routes = append(v.Routes, rt)
		}
		out = append(out, v)
	}
	return out
}

// endpointMTLS reports whether the control plane marks le as an mTLS
// endpoint of c: Envoy's way, endpoint metadata
// envoy.transport_socket_match {tls: mtls} selecting c's
// transport_socket_matches entry with an envoy.transport_sockets.tls
// UpstreamTlsContext.
//
// SEAM (issue 13): the hand-written xdswire decoder reads neither endpoint
// metadata nor Cluster.transport_socket_matches, and new xDS fields must
// not be hand-decoded, so this returns false until the generated Envoy
// types replace xdswire. Then it reads
// le.metadata.filter_metadata["envoy.transport_socket_match"]["tls"] ==
// "mtls" and checks that c has a transport_socket_matches entry matching
// it. Until then only --mtls=strict originates mTLS.
func endpointMTLS(c *xdswire.Cluster, le *xdswire.LBEndpoint) bool {
	_, _ = c, le
	return false
}
