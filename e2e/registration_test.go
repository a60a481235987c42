package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/e2e/harness"
	registryv1 "github.com/shoal-mesh/shoal/proto/shoal/registry/v1"
)

// Issue 14: a sidecar with an identity registers its app through the
// control plane (RegistryService on the xDS port), with no etcd endpoint;
// when its first control plane dies it renews through the next on its
// --xds list, keeping its lease; killed with -9, its instance lapses
// within the TTL. A web SVID cannot register an instance of orders, and
// etcd's revision does not move.
func TestRegisterThroughControlPlaneE2E(t *testing.T) {
	t.Parallel()
	cp1 := harness.StartControlPlane(t, "--xds-auth", "required")
	cp2 := harness.StartControlPlaneOnEtcd(t, cp1, "--xds-auth", "required", "--ca-dir", filepath.Join(cp1.DataDir, "ca"))
	dir := t.TempDir()
	cli := cp1.EtcdClient(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*harness.DefaultTimeout)
	defer cancel()

	app := harness.StartNodeApp(t, harness.NodeAppOptions{Service: "orders", ID: "orders-1"})
	const ttl = 3 * time.Second
	orders := harness.StartSidecar(t, harness.SidecarOptions{
		CP: cp1, Service: "orders", InstanceID: "orders-1", AppPort: app.Port, NoEtcd: true,
		Extra: []string{"--listen", harness.FreeAddr(t), "--join-token-file", createToken(t, cp1, dir, "orders"),
			"--xds", cp2.XDS + "," + cp1.XDS, "--ttl", ttl.String()},
	})
	web := harness.StartSidecar(t, harness.SidecarOptions{
		CP: cp1, Service: "web", InstanceID: "web-1", AppPort: harness.FreePort(t), NoRegister: true, NoEtcd: true,
		Upstreams: []string{"orders"},
		Extra:     []string{"--join-token-file", createToken(t, cp1, dir, "web")},
	})
	if !strings.Contains(orders.Output(), `via=controlplane`) {
		t.Fatalf("the orders sidecar did not say it registered through the control plane:\n%s", orders.Output())
	}
	key := "/shoal/v1/instances/orders/orders-1"
	get := func() *clientv3.GetResponse {
		t.Helper()
		r, err := cli.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := get()
	if len(first.Kvs) != 1 || first.Kvs[0].Lease == 0 || !strings.Contains(string(first.Kvs[0].Value), `"tls":"mtls"`) {
		t.Fatalf("etcd %s = %v, want the mTLS inbound listener bound to a lease", key, first.Kvs)
	}
	lease := first.Kvs[0].Lease

	t.Run("traffic reaches the instance registered through the control plane", func(t *testing.T) {
		harness.Eventually(t, harness.DefaultTimeout, "web reaches orders-1", func() bool {
			inst, code, err := harness.Fetch(ctx, http.DefaultClient, "GET", web.UpstreamURL("orders")+"/", "", nil, 5*time.Second)
			return err == nil && code == 200 && inst == "orders-1"
		})
	})

	t.Run("a web SVID cannot register an instance of orders; etcd's revision is unchanged", func(t *testing.T) {
		cert, err := tls.LoadX509KeyPair(filepath.Join(web.StateDir, "identity/svid.pem"), filepath.Join(web.StateDir, "identity/key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		bundle, err := os.ReadFile(filepath.Join(web.StateDir, "identity/bundle.pem"))
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(bundle)
		conn, err := grpc.NewClient(cp1.XDS, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{cert}, RootCAs: roots, MinVersion: tls.VersionTLS13,
		})))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		rc := registryv1.NewRegistryServiceClient(conn)
		before := get().Header.Revision
		_, err = rc.Register(ctx, &registryv1.RegisterRequest{Instance: &registryv1.Instance{
			Id: "orders-evil", Service: "orders", Address: "127.0.0.1", Port: 6666,
		}})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), webID) {
			t.Fatalf("web registering orders = %v, want PermissionDenied naming %s", err, webID)
		}
		_, err = rc.Deregister(ctx, &registryv1.DeregisterRequest{LeaseId: lease, Service: "orders", InstanceId: "orders-1"})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("web deregistering orders-1 = %v, want PermissionDenied", err)
		}
		if after := get().Header.Revision; after != before {
			t.Fatalf("etcd revision %d -> %d after refused writes", before, after)
		}
	})

	t.Run("its first control plane killed, the sidecar renews through the next, keeping its lease", func(t *testing.T) {
		cp2.Kill()
		harness.Eventually(t, harness.DefaultTimeout, "the sidecar renews through "+cp1.XDS, func() bool {
			return strings.Contains(orders.Output(), "renewing through another control plane")
		})
		// Two more TTLs: the lease would have lapsed without renewals.
		deadline := time.Now().Add(2 * ttl)
		for time.Now().Before(deadline) {
			if r := get(); len(r.Kvs) != 1 || r.Kvs[0].Lease != lease {
				t.Fatalf("etcd %s = %v, want it kept on lease %x", key, r.Kvs, lease)
			}
			time.Sleep(200 * time.Millisecond) // sampling the key, not synchronising
		}
	})

	t.Run("kill -9 of the sidecar: the instance is gone within the TTL", func(t *testing.T) {
		orders.Kill()
		killed := time.Now()
		took := harness.Eventually(t, harness.DefaultTimeout, "orders-1 gone from etcd", func() bool { return len(get().Kvs) == 0 })
		t.Logf("orders-1 left etcd %s after kill -9 (TTL %s)", took.Round(time.Millisecond), ttl)
		// etcd expires a lease at most a TTL after its last renewal; a
		// loaded machine may check expiry late, hence the slack.
		if since := time.Since(killed); since > ttl+5*time.Second {
			t.Fatalf("orders-1 left etcd %s after kill -9, want within the TTL (%s, +5s slack)", since, ttl)
		}
	})
}
