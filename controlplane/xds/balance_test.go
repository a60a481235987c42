package xds

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/google/go-cmp/cmp"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// A rule's balance_factor (issue 18) becomes hash_balance_factor on a
// cluster of its own, "<service>/<strategy>/balance-<N>", so a rule without
// one (or with another) keeps its cluster unbounded.
func TestTranslateBalanceFactor(t *testing.T) {
	hashed := func(s shoalv1.Strategy, bf uint32) *shoalv1.Rule {
		r := rule(s, to("orders"))
		r.HashKey = &shoalv1.HashKey{Key: &shoalv1.HashKey_Header{Header: "x-user"}}
		r.BalanceFactor = bf
		return r
	}
	res, statuses := Translate(Input{Endpoints: ordersFleet(), Routes: []*shoalv1.Route{
		route("ring", []string{"ring.example.com"}, hashed(shoalv1.Strategy_STRATEGY_RING_HASH, 125)),
		route("ring-plain", []string{"plain.example.com"}, hashed(shoalv1.Strategy_STRATEGY_RING_HASH, 0)),
		route("maglev", []string{"maglev.example.com"}, hashed(shoalv1.Strategy_STRATEGY_MAGLEV, 150)),
	}}, CapabilitiesEnvoy)
	for _, st := range statuses {
		if !st.GetAccepted() {
			t.Fatalf("route %s rejected: %v", st.GetName(), st)
		}
	}
	if err := res.Check(); err != nil {
		t.Fatalf("Check() = %v", err)
	}
	factors := map[string]uint32{}
	for _, r := range res.Clusters {
		c := r.(*clusterv3.Cluster)
		if c.GetEdsClusterConfig().GetServiceName() != "orders" || c.GetLbPolicy() == clusterv3.Cluster_ROUND_ROBIN {
			continue
		}
		factors[c.GetName()] = c.GetCommonLbConfig().GetConsistentHashingLbConfig().GetHashBalanceFactor().GetValue()
	}
	want := map[string]uint32{"orders/ring_hash/balance-125": 125, "orders/ring_hash": 0, "orders/maglev/balance-150": 150}
	if diff := cmp.Diff(want, factors); diff != "" {
		t.Errorf("hash_balance_factor per cluster (-want +got):\n%s", diff)
	}
	routed := map[string]string{}
	for _, r := range res.Routes {
		for _, vh := range r.(*routev3.RouteConfiguration).GetVirtualHosts() {
			for _, rt := range vh.GetRoutes() {
				routed[vh.GetDomains()[0]] = rt.GetRoute().GetCluster()
			}
		}
	}
	for host, cluster := range map[string]string{
		"ring.example.com": "orders/ring_hash/balance-125", "plain.example.com": "orders/ring_hash", "maglev.example.com": "orders/maglev/balance-150",
	} {
		if routed[host] != cluster {
			t.Errorf("%s routes to %q, want %q", host, routed[host], cluster)
		}
	}
}
