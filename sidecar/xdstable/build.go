package xdstable

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	clusterv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/cluster/v3"
	corev3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/core/v3"
	endpointv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/endpoint/v3"
	routev3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/route/v3"
	httpv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/type/v3"
	"github.com/shoal-mesh/shoal/sidecar/internal/xdsres"
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
	// Service, if set, is the proxy's own service: the authorization
	// policies on its RouteConfiguration become Table.Authz.
	Service string
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
	// over mTLS (route.Endpoint.ServerID); "" means plain. mtls reports
	// whether the control plane marks the endpoint as mTLS, san the URI
	// SAN its cluster's UpstreamTlsContext requires ("" if none). Nil means
	// plain for all. It is called during Build only.
	ServerID func(service string, mtls bool, san string) string
	// Known are services this proxy has seen before (ServiceNames of
	// earlier snapshots). One that snap no longer has (its last instance
	// left, so the control plane dropped it) keeps an empty cluster and a
	// virtual host for its name: a request for it gets 503 "no healthy
	// instance of service X", not the 404 of a name nobody knows.
	Known []string
	// NoStallDetection turns stuck-endpoint detection off for every
	// cluster (`--stall-detection=false`: services whose requests may all
	// wait long on purpose, such as long polls without other traffic).
	NoStallDetection bool
}

// ServiceNames returns the services snap has clusters for (a service's
// variants, <service>/<strategy>, count once), sorted.
func ServiceNames(snap *xdsclient.Snapshot) []string {
	if snap == nil {
		return nil
	}
	var out []string
	for _, name := range snap.Names(xdsclient.ClusterType) {
		if svc, _, _ := strings.Cut(name, "/"); svc != LocalAppCluster {
			out = append(out, svc)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// Build compiles snap into a routing table. Resources the table cannot
// express are skipped with an error listing them; the table is still
// returned (a partial table beats none).
func Build(snap *xdsclient.Snapshot, o Options) (*route.Table, error) {
	cfg := route.Config{Loads: o.Loads}
	var errs []string
	if snap != nil {
		cfg.Version = snapVersion(snap)
		// The snapshot holds wire bytes: each resource is decoded here, built
		// into the table and dropped; an assignment shared by several
		// cluster variants is decoded once per Build.
		rc, err := snap.RouteConfiguration(o.RouteConfig)
		if err != nil {
			errs = append(errs, err.Error())
		}
		if rc != nil {
			cfg.VirtualHosts = virtualHosts(rc, &errs)
		}
		if o.Service != "" {
			cfg.Authz, err = authzPolicy(snap, o.Service)
			if err != nil {
				errs = append(errs, err.Error())
			}
		}
		clas := map[string]*endpointv3.ClusterLoadAssignment{}
		claOf := func(name string) (*endpointv3.ClusterLoadAssignment, error) {
			if cla, ok := clas[name]; ok {
				return cla, nil
			}
			cla, err := snap.ClusterLoadAssignment(name)
			clas[name] = cla
			return cla, err
		}
		for _, name := range snap.Names(xdsclient.ClusterType) {
			c, err := snap.Cluster(name)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			cc, err := cluster(c, claOf, o)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			cfg.Clusters = append(cfg.Clusters, cc)
		}
	}
	addGone(&cfg, o.Known)
	if o.LocalApp != nil {
		cfg.Clusters = append(cfg.Clusters, route.ClusterConfig{
			Name: LocalAppCluster, Protocol: o.LocalAppProtocol, Endpoints: []route.Endpoint{*o.LocalApp},
			// The local app is the only endpoint: never eject it.
			Outlier: route.OutlierDetection{Disabled: true},
		})
	}
	if o.NoStallDetection {
		for i := range cfg.Clusters {
			cfg.Clusters[i].Stall.Disabled = true
		}
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

// addGone gives each known service that cfg has neither a cluster nor a
// domain for an empty cluster and a virtual host routing its name to it.
func addGone(cfg *route.Config, known []string) {
	taken := map[string]bool{}
	for _, c := range cfg.Clusters {
		taken[c.Name] = true
	}
	for _, vh := range cfg.VirtualHosts {
		for _, d := range vh.Domains {
			taken[d] = true
		}
	}
	for _, svc := range known {
		if taken[svc] {
			continue
		}
		cfg.Clusters = append(cfg.Clusters, route.ClusterConfig{Name: svc})
		cfg.VirtualHosts = append(cfg.VirtualHosts, route.VirtualHost{
			Name: "gone-" + svc, Domains: []string{svc},
			Routes: []route.Route{{Clusters: []route.WeightedCluster{{Name: svc, Weight: 1}}}},
		})
	}
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
func cluster(c *clusterv3.Cluster, claOf func(string) (*endpointv3.ClusterLoadAssignment, error), o Options) (route.ClusterConfig, error) {
	if c == nil {
		return route.ClusterConfig{}, errors.New("cluster: empty")
	}
	cc := route.ClusterConfig{
		Name:           c.GetName(),
		ConnectTimeout: std(c.GetConnectTimeout()),
		Outlier:        outlier(c.GetOutlierDetection()),
	}
	b, lbcfg, err := lbPolicy(c)
	if err != nil {
		return cc, fmt.Errorf("cluster %q: %w", c.GetName(), err)
	}
	cc.LB, cc.LBConfig = b, lbcfg
	cc.SlowStart = slowStart(c)
	circuitBreakers(c.GetCircuitBreakers(), &cc)
	if cc.Stall, err = stallDetection(c); err != nil {
		return cc, fmt.Errorf("cluster %q: %w", c.GetName(), err)
	}
	if usesHTTP2(c) {
		cc.Protocol = route.HTTP2
	}
	if c.GetMetadata().GetFilterMetadata()[xdsres.ClusterMetadataKey].GetFields()["protocol"].GetStringValue() == "tcp" {
		cc.Protocol = route.TCP // every instance is a raw TCP app
	}
	claName := c.GetEdsClusterConfig().GetServiceName()
	if claName == "" {
		claName = c.GetName()
	}
	service := claName
	if i := strings.IndexByte(service, '['); i >= 0 {
		service = service[:i] // a subset: "orders[version=v2]"
	}
	cla, err := claOf(claName)
	if err != nil {
		return cc, fmt.Errorf("cluster %q: %w", c.GetName(), err)
	}
	var serverID func(*endpointv3.LbEndpoint) string
	if o.ServerID != nil {
		matches, err := tlsMatches(c)
		if err != nil {
			return cc, fmt.Errorf("cluster %q: %w", c.GetName(), err)
		}
		serverID = func(le *endpointv3.LbEndpoint) string {
			mtls, san := endpointTLS(matches, le)
			return o.ServerID(service, mtls, san)
		}
	}
	cc.Endpoints = endpoints(cla, service, o.Gossip, serverID)
	return cc, nil
}

func lbPolicy(c *clusterv3.Cluster) (lb.Builder, lb.Config, error) {
	cfg := lb.DefaultConfig()
	if p := c.GetCommonLbConfig().GetHealthyPanicThreshold(); p != nil {
		cfg.PanicThreshold = p.GetValue()
	}
	var name string
	w, err := xdsres.LoadBalancingPolicy(c)
	switch {
	case err != nil:
		return nil, cfg, err
	case w != nil:
		// load_balancing_policy overrides lb_policy (gRFC A52); the one
		// policy read from it is client_side_weighted_round_robin, the
		// least_loaded strategy (issue 17).
		cfg.LeastLoaded = lb.LeastLoadedConfig{
			BlackoutPeriod:          w.GetBlackoutPeriod().AsDuration(),
			WeightExpirationPeriod:  w.GetWeightExpirationPeriod().AsDuration(),
			WeightUpdatePeriod:      w.GetWeightUpdatePeriod().AsDuration(),
			ErrorUtilizationPenalty: float64(w.GetErrorUtilizationPenalty().GetValue()),
		}
		if w.GetErrorUtilizationPenalty() != nil && w.GetErrorUtilizationPenalty().GetValue() == 0 {
			cfg.LeastLoaded.ErrorUtilizationPenalty = -1 // an explicit 0: no penalty
		}
		if w.GetBlackoutPeriod() != nil && cfg.LeastLoaded.BlackoutPeriod <= 0 {
			cfg.LeastLoaded.BlackoutPeriod = time.Nanosecond // an explicit 0s: no blackout (A58)
		}
		b, err := builtin.Builder(lb.LeastLoaded)
		return b, cfg, err
	}
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		name = lb.RoundRobin
	case clusterv3.Cluster_LEAST_REQUEST:
		name = lb.LeastRequest
		if n := c.GetLeastRequestLbConfig().GetChoiceCount(); n != nil {
			cfg.LeastRequest.ChoiceCount = int(n.GetValue())
		}
	case clusterv3.Cluster_RING_HASH:
		name = lb.RingHash
		// Deliberate deviation from Envoy's ring sizing: every endpoint gets
		// RingHashesPerWeight entries per unit of weight whatever the other
		// endpoints are, so when one of N endpoints leaves only its own keys
		// move (about 1/N). Envoy's sizing spreads the ring anew and moves
		// about 41 % of keys when one of three leaves. Sidecars agree among
		// themselves; a key may map differently in Envoy.
		cfg.RingHash.HashesPerWeight = RingHashesPerWeight
		if v := c.GetRingHashLbConfig().GetMinimumRingSize(); v != nil {
			cfg.RingHash.MinRingSize = v.GetValue()
		}
		if v := c.GetRingHashLbConfig().GetMaximumRingSize(); v != nil {
			cfg.RingHash.MaxRingSize = v.GetValue()
		}
		f, err := balanceFactor(c)
		if err != nil {
			return nil, cfg, err
		}
		cfg.RingHash.BoundedLoadFactor = f
	case clusterv3.Cluster_MAGLEV:
		name = lb.Maglev
		f, err := balanceFactor(c)
		if err != nil {
			return nil, cfg, err
		}
		cfg.Maglev.BoundedLoadFactor = f
	case clusterv3.Cluster_RANDOM:
		name = lb.Random
	default:
		return nil, cfg, fmt.Errorf("lb_policy %s is not supported", c.GetLbPolicy())
	}
	b, err := builtin.Builder(name)
	return b, cfg, err
}

// balanceFactor is the bounded-load factor c of consistent hashing:
// common_lb_config.consistent_hashing_lb_config.hash_balance_factor / 100,
// 0 when unset. Envoy rejects values below 100, and so does the sidecar.
func balanceFactor(c *clusterv3.Cluster) (float64, error) {
	v := c.GetCommonLbConfig().GetConsistentHashingLbConfig().GetHashBalanceFactor()
	if v == nil {
		return 0, nil
	}
	if v.GetValue() < 100 {
		return 0, fmt.Errorf("hash_balance_factor %d is below 100", v.GetValue())
	}
	return float64(v.GetValue()) / 100, nil
}

// usesHTTP2 reports whether the cluster's upstream HTTP protocol options
// select HTTP/2 explicitly.
func usesHTTP2(c *clusterv3.Cluster) bool {
	o, _ := xdsres.HTTPProtocolOptions(c) // validated when c was accepted
	_, ok := o.GetExplicitHttpConfig().GetProtocolConfig().(*httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions)
	return ok
}

func outlier(od *clusterv3.OutlierDetection) route.OutlierDetection {
	if od == nil {
		return route.OutlierDetection{Disabled: true}
	}
	return route.OutlierDetection{
		Consecutive5xx:             u32(od.GetConsecutive_5Xx()),
		ConsecutiveConnectFailures: u32(od.GetConsecutiveGatewayFailure()),
		BaseEjectionTime:           std(od.GetBaseEjectionTime()),
		MaxEjectionTime:            std(od.GetMaxEjectionTime()),
		MaxEjectionPercent:         u32(od.GetMaxEjectionPercent()),
	}
}

// u32 reads an optional UInt32Value as an int (0 when unset).
func u32(p *wrapperspb.UInt32Value) int { return int(p.GetValue()) }

// std converts an optional Duration (0 when unset; validated, so in range).
func std(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
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
func endpoints(cla *endpointv3.ClusterLoadAssignment, service string, gossip func(string, string) Verdict, serverID func(*endpointv3.LbEndpoint) string) []route.Endpoint {
	if cla == nil {
		return nil
	}
	var out []route.Endpoint
	var soft []int
	anyHealthy := false
	for _, loc := range cla.GetEndpoints() {
		for _, le := range loc.GetLbEndpoints() {
			sa := le.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				continue
			}
			id := le.GetEndpoint().GetHostname()
			v := VerdictUnknown
			if gossip != nil && id != "" {
				v = gossip(service, id)
			}
			hs := le.GetHealthStatus()
			edsOK := hs == corev3.HealthStatus_HEALTHY || hs == corev3.HealthStatus_UNKNOWN
			healthy := edsOK && (v == VerdictUnknown || v == VerdictRoutable)
			if !healthy && hs != corev3.HealthStatus_DRAINING && v != VerdictOut &&
				(v == VerdictSuspect || (hs == corev3.HealthStatus_UNHEALTHY && v == VerdictRoutable)) {
				soft = append(soft, len(out))
			}
			anyHealthy = anyHealthy || healthy
			weight := le.GetLoadBalancingWeight().GetValue()
			ep := route.Endpoint{
				Address:  joinHostPort(sa.GetAddress(), sa.GetPortValue()),
				Weight:   weight,
				Healthy:  healthy,
				Metadata: service + "/" + id,
			}
			if serverID != nil {
				ep.ServerID = serverID(le)
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

func virtualHosts(rc *routev3.RouteConfiguration, errs *[]string) []route.VirtualHost {
	var out []route.VirtualHost
	for _, vh := range rc.GetVirtualHosts() {
		v := route.VirtualHost{Name: vh.GetName(), Domains: vh.GetDomains()}
		for _, r := range vh.GetRoutes() {
			rt, err := convertRoute(r)
			if err != nil {
				*errs = append(*errs, fmt.Sprintf("route %q in virtual host %q: %v", r.GetName(), vh.GetName(), err))
				continue
			}
			v.Routes = append(v.Routes, rt)
		}
		out = append(out, v)
	}
	return out
}

// slowStart reads Envoy's slow_start_config of a round robin or least
// request cluster, or of its client_side_weighted_round_robin policy
// (least_loaded), which overrides lb_policy (gRFC A52).
func slowStart(c *clusterv3.Cluster) route.SlowStart {
	if w, _ := xdsres.LoadBalancingPolicy(c); w != nil { // validated when c was accepted
		sc := w.GetSlowStartConfig()
		if sc == nil {
			return route.SlowStart{}
		}
		return slowStartOf(sc.GetSlowStartWindow(), sc.GetAggression(), sc.GetMinWeightPercent())
	}
	var sc *clusterv3.Cluster_SlowStartConfig
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		sc = c.GetRoundRobinLbConfig().GetSlowStartConfig()
	case clusterv3.Cluster_LEAST_REQUEST:
		sc = c.GetLeastRequestLbConfig().GetSlowStartConfig()
	}
	if sc == nil {
		return route.SlowStart{}
	}
	return slowStartOf(sc.GetSlowStartWindow(), sc.GetAggression(), sc.GetMinWeightPercent())
}

func slowStartOf(window *durationpb.Duration, aggression *corev3.RuntimeDouble, minWeight *typev3.Percent) route.SlowStart {
	s := route.SlowStart{
		Window:           std(window),
		Aggression:       aggression.GetDefaultValue(),
		MinWeightPercent: minWeight.GetValue(),
	}
	if minWeight != nil && s.MinWeightPercent == 0 {
		s.MinWeightPercent = -1 // an explicit 0: no floor
	}
	return s
}

// circuitBreakers reads the DEFAULT-priority thresholds (the first, as
// Envoy) and the per-host max_requests into cc; unset limits keep the
// route package's defaults.
func circuitBreakers(cb *clusterv3.CircuitBreakers, cc *route.ClusterConfig) {
	for _, th := range cb.GetThresholds() {
		if th.GetPriority() != corev3.RoutingPriority_DEFAULT {
			continue
		}
		cc.MaxRequests = u32(th.GetMaxRequests())
		cc.MaxConnections = u32(th.GetMaxConnections())
		cc.MaxPendingRequests = u32(th.GetMaxPendingRequests())
		cc.MaxRetries = u32(th.GetMaxRetries())
		break
	}
	for _, th := range cb.GetPerHostThresholds() {
		if th.GetPriority() == corev3.RoutingPriority_DEFAULT {
			cc.MaxRequestsPerEndpoint = u32(th.GetMaxRequests())
			break
		}
	}
}

// stallDetection reads the stall settings a route rule puts in the
// cluster's metadata, filter_metadata.shoal.stall_detection:
// {disabled: true} or {min_threshold, max_threshold} as Go durations.
func stallDetection(c *clusterv3.Cluster) (route.StallDetection, error) {
	var sd route.StallDetection
	v := c.GetMetadata().GetFilterMetadata()[MetadataKey].GetFields()["stall_detection"]
	if v == nil {
		return sd, nil
	}
	f := v.GetStructValue().GetFields()
	if f == nil {
		return sd, errors.New("metadata shoal.stall_detection is not an object")
	}
	sd.Disabled = f["disabled"].GetBoolValue()
	for _, b := range []struct {
		key string
		to  *time.Duration
	}{{"min_threshold", &sd.Min}, {"max_threshold", &sd.Max}} {
		fv, ok := f[b.key]
		if !ok {
			continue
		}
		d, err := time.ParseDuration(fv.GetStringValue())
		if err != nil || d <= 0 {
			return sd, fmt.Errorf("metadata shoal.stall_detection.%s %q is not a positive duration", b.key, fv.GetStringValue())
		}
		*b.to = d
	}
	return sd, nil
}

// MetadataKey is the filter_metadata key of shoal-only cluster settings.
const MetadataKey = "shoal"
