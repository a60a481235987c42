package etcdlite

import (
	"context"
	"fmt"
)

// Put writes key=value bound to lease (0: no lease) and returns the etcd
// revision of the write. It fails with ErrLeaseNotFound if lease does not
// exist. A Put is not retried (it is not idempotent for watchers); value is
// not retained.
func (c *Client) Put(ctx context.Context, key string, value []byte, lease int64) (int64, error) {
	// PutRequest: key = 1, value = 2, lease = 3.
	req := appendBytes(nil, 1, []byte(key))
	req = appendBytes(req, 2, value)
	req = appendInt(req, 3, lease)
	resp, err := c.invoke(ctx, methodPut, req, false)
	if err != nil {
		return 0, fmt.Errorf("etcdlite: put %q: %w", key, err)
	}
	r, err := decodeKVResponse(resp)
	if err != nil {
		return 0, fmt.Errorf("etcdlite: put %q: %w", key, err)
	}
	return r.revision, nil
}

// Exists reports whether key exists, with a linearizable read, and the
// etcd revision of the read.
func (c *Client) Exists(ctx context.Context, key string) (bool, int64, error) {
	// RangeRequest: key = 1, count_only = 9.
	req := appendBytes(nil, 1, []byte(key))
	req = appendBool(req, 9, true)
	resp, err := c.invoke(ctx, methodRange, req, true)
	if err != nil {
		return false, 0, fmt.Errorf("etcdlite: get %q: %w", key, err)
	}
	r, err := decodeKVResponse(resp)
	if err != nil {
		return false, 0, fmt.Errorf("etcdlite: get %q: %w", key, err)
	}
	return r.count > 0, r.revision, nil
}

// Delete deletes key; deleting a missing key is not an error.
func (c *Client) Delete(ctx context.Context, key string) error {
	// DeleteRangeRequest: key = 1.
	if _, err := c.invoke(ctx, methodDeleteRange, appendBytes(nil, 1, []byte(key)), false); err != nil {
		return fmt.Errorf("etcdlite: delete %q: %w", key, err)
	}
	return nil
}
