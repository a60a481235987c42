package harness

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-mesh/shoal/internal/etcdclient"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// StartControlPlaneOnEtcd starts a control plane whose etcd is the embedded
// etcd of etcd (--etcd-endpoints): etcd stands in for an external etcd
// cluster, so restarting, pausing or compacting it is an etcd fault while
// the returned control plane keeps serving xDS, the API and gossip. The
// returned ControlPlane's Etcd is etcd's, so sidecars started against it
// register in that etcd.
func StartControlPlaneOnEtcd(t testing.TB, etcd *ControlPlane, extra ...string) *ControlPlane {
	t.Helper()
	cp := StartControlPlane(t, append([]string{"--etcd-endpoints", etcd.EtcdURL()}, extra...)...)
	cp.Etcd = etcd.Etcd
	return cp
}

// EtcdClient returns a client of cp's etcd, closed at test cleanup. It
// reconnects on its own when that etcd restarts.
func (cp *ControlPlane) EtcdClient(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := etcdclient.New([]string{cp.EtcdURL()})
	if err != nil {
		t.Fatalf("harness: etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// PutInstance returns the op that writes in under its key without a lease
// (an instance registered by hand, e.g. with etcdctl).
func PutInstance(t testing.TB, in registry.Instance) clientv3.Op {
	t.Helper()
	in.Normalize()
	if err := in.Validate(); err != nil {
		t.Fatalf("harness: instance %s/%s: %v", in.Service, in.ID, err)
	}
	v, err := in.Marshal()
	if err != nil {
		t.Fatalf("harness: encode instance %s/%s: %v", in.Service, in.ID, err)
	}
	return clientv3.OpPut(registry.InstanceKey(in.Service, in.ID), string(v))
}

// EtcdInstances reads service's instances straight from etcd (a linearized
// Get), as "id@host:port", sorted.
func EtcdInstances(ctx context.Context, cli *clientv3.Client, service string) ([]string, error) {
	resp, err := cli.Get(ctx, registry.ServicePrefix(service), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("harness: etcd get %s: %w", service, err)
	}
	out := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		in, err := registry.UnmarshalInstance(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("harness: etcd key %s: %w", kv.Key, err)
		}
		out = append(out, in.ID+"@"+in.HostPort())
	}
	slices.Sort(out)
	return out, nil
}

// CompactEtcd compacts cli's etcd up to its current revision and waits for
// the physical compaction, so no revision before it can be watched from.
// It returns the compaction revision.
func CompactEtcd(ctx context.Context, cli *clientv3.Client) (int64, error) {
	resp, err := cli.Get(ctx, "compaction-probe")
	if err != nil {
		return 0, fmt.Errorf("harness: etcd revision: %w", err)
	}
	rev := resp.Header.Revision
	if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		return 0, fmt.Errorf("harness: compact at %d: %w", rev, err)
	}
	return rev, nil
}

// Instances asks the control plane's RegistryService (ListInstances) for
// its view of service: "id@host:port", sorted. An error means the API did
// not answer within 2s.
func (cp *ControlPlane) Instances(service string) ([]string, error) {
	conn, err := grpc.NewClient("passthrough:///"+cp.API, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("harness: api client: %w", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := shoalv1.NewRegistryServiceClient(conn).ListInstances(ctx, &shoalv1.ListInstancesRequest{Service: service})
	if err != nil {
		return nil, fmt.Errorf("harness: ListInstances %s: %w", service, err)
	}
	out := make([]string, 0, len(resp.GetInstances()))
	for _, in := range resp.GetInstances() {
		out = append(out, fmt.Sprintf("%s@%s:%d", in.GetId(), in.GetAddress(), in.GetPort()))
	}
	slices.Sort(out)
	return out, nil
}
