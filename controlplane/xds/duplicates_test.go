package xds

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

func TestDuplicateRegistrations(t *testing.T) {
	tests := []struct {
		name string
		eps  []registry.Endpoint
		want []*shoalv1.DuplicateRegistration
	}{
		{"distinct addresses", ordersFleet(), nil},
		{"package and sidecar on one address: the lowest id is served", []registry.Endpoint{
			endpoint("orders", "orders-sidecar", "10.0.0.1", 3001, registry.HealthHealthy),
			endpoint("orders", "orders-1", "10.0.0.1", 3001, registry.HealthHealthy, labels("version", "v2")),
		}, []*shoalv1.DuplicateRegistration{{Service: "orders", Address: "10.0.0.1:3001", InstanceIds: []string{"orders-1", "orders-sidecar"}, KeptInstanceId: "orders-1"}}},
		{"a routable one wins over a lower id", []registry.Endpoint{
			endpoint("orders", "a", "10.0.0.1", 3001, registry.HealthUnhealthy),
			endpoint("orders", "b", "10.0.0.1", 3001, registry.HealthUnknown),
		}, []*shoalv1.DuplicateRegistration{{Service: "orders", Address: "10.0.0.1:3001", InstanceIds: []string{"a", "b"}, KeptInstanceId: "b"}}},
		{"one address in two services is not a duplicate", []registry.Endpoint{
			endpoint("orders", "a", "10.0.0.1", 3001, registry.HealthHealthy),
			endpoint("users", "a", "10.0.0.1", 3001, registry.HealthHealthy),
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := DuplicateRegistrations(tc.eps)
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("DuplicateRegistrations (-want +got):\n%s", diff)
			}
			// The kept instance is the one the load assignment serves.
			for _, d := range got {
				var served []string
				for _, ep := range indexEndpoints(tc.eps)[d.GetService()] {
					if ep.HostPort() == d.GetAddress() {
						served = append(served, ep.ID)
					}
				}
				if len(served) != 1 || served[0] != d.GetKeptInstanceId() {
					t.Errorf("%s: translation serves %v, DuplicateRegistrations says %q", d.GetAddress(), served, d.GetKeptInstanceId())
				}
			}
		})
	}
}
