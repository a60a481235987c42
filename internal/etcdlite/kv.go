package etcdlite

import (
	"context"
	"fmt"

	pb "github.com/shoal-mesh/shoal/internal/etcdlite/internal/etcdpb/etcdserverpb"
)

// Put writes key=value bound to lease (0: no lease) and returns the etcd
// revision of the write. It fails with ErrLeaseNotFound if lease does not
// exist. A Put is not retried (retryPolicies); value is not retained.
func (c *Client) Put(ctx context.Context, key string, value []byte, lease int64) (int64, error) {
	resp, err := invoke(ctx, c, rpcPut, &pb.PutRequest{Key: []byte(key), Value: value, Lease: lease})
	if err != nil {
		return 0, fmt.Errorf("etcdlite: put %q: %w", key, err)
	}
	return resp.GetHeader().GetRevision(), nil
}

// Exists reports whether key exists, with a linearizable read, and the
// etcd revision of the read.
func (c *Client) Exists(ctx context.Context, key string) (bool, int64, error) {
	resp, err := invoke(ctx, c, rpcRange, &pb.RangeRequest{Key: []byte(key), CountOnly: true})
	if err != nil {
		return false, 0, fmt.Errorf("etcdlite: get %q: %w", key, err)
	}
	return resp.GetCount() > 0, resp.GetHeader().GetRevision(), nil
}

// Delete deletes key; deleting a missing key is not an error.
func (c *Client) Delete(ctx context.Context, key string) error {
	if _, err := invoke(ctx, c, rpcDeleteRange, &pb.DeleteRangeRequest{Key: []byte(key)}); err != nil {
		return fmt.Errorf("etcdlite: delete %q: %w", key, err)
	}
	return nil
}
