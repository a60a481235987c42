package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// Issue 16: `--xds a:1,b:2` once looped forever on "too many colons". A
// sidecar given two control planes over one etcd keeps receiving updates
// from the second after the first is killed: an instance registered
// afterwards is routed to, and the one already known kept serving.
func TestSidecarFailsOverToTheSecondControlPlane(t *testing.T) {
	t.Parallel()
	etcd := harness.StartControlPlane(t)
	first := harness.StartControlPlaneOnEtcd(t, etcd)
	second := harness.StartControlPlaneOnEtcd(t, etcd)
	web1 := harness.StartNodeApp(t, harness.NodeAppOptions{Service: "web", ID: "web-1", Etcd: etcd.EtcdURL()})
	client := harness.StartSidecar(t, harness.SidecarOptions{
		CP: first, Service: "client", InstanceID: "client-1", AppPort: web1.Port, NoRegister: true, NoGossip: true,
		Upstreams: []string{"web"}, Extra: []string{"--xds", first.XDS + "," + second.XDS},
	})
	url := "http://" + client.Upstreams["web"] + "/"
	hits := func(want string) func() bool {
		return func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for range 8 {
				id, status, err := harness.Fetch(ctx, http.DefaultClient, http.MethodGet, url, "", nil, 2*time.Second)
				if err == nil && status == http.StatusOK && id == want {
					return true
				}
			}
			return false
		}
	}
	harness.Eventually(t, harness.DefaultTimeout, "web-1 through the first control plane", hits("web-1"))

	first.Kill()
	harness.StartNodeApp(t, harness.NodeAppOptions{Service: "web", ID: "web-2", Etcd: etcd.EtcdURL()})
	took := harness.Eventually(t, harness.DefaultTimeout, "web-2, registered after the first control plane died", hits("web-2"))
	if !hits("web-1")() {
		t.Errorf("web-1 no longer served after the failover")
	}
	t.Logf("new instance routable %s after the first control plane was killed", took.Round(10*time.Millisecond))
}
