package etcdlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"

	pb "github.com/shoal-mesh/shoal/internal/etcdlite/internal/etcdpb/etcdserverpb"
)

var keepAliveDesc = grpc.StreamDesc{StreamName: "LeaseKeepAlive", ServerStreams: true, ClientStreams: true}

// Grant creates a lease of ttl, rounded up to whole seconds (etcd may raise
// it to its minimum), and returns its ID. Like clientv3 it retries while
// etcd answers Unavailable.
func (c *Client) Grant(ctx context.Context, ttl time.Duration) (int64, error) {
	secs := max(1, int64((ttl+time.Second-1)/time.Second))
	resp, err := invoke(ctx, c, rpcLeaseGrant, &pb.LeaseGrantRequest{TTL: secs})
	switch {
	case err != nil:
		return 0, fmt.Errorf("etcdlite: grant lease: %w", err)
	case resp.GetError() != "":
		return 0, fmt.Errorf("etcdlite: grant lease: %s", resp.GetError())
	case resp.GetID() == 0:
		return 0, errors.New("etcdlite: grant lease: etcd returned no lease ID")
	}
	return resp.GetID(), nil
}

// Revoke revokes lease, deleting every key attached to it. It fails with
// ErrLeaseNotFound if the lease is already gone.
func (c *Client) Revoke(ctx context.Context, lease int64) error {
	if _, err := invoke(ctx, c, rpcLeaseRevoke, &pb.LeaseRevokeRequest{ID: lease}); err != nil {
		return fmt.Errorf("etcdlite: revoke lease %x: %w", lease, err)
	}
	return nil
}

// KeepAlive renews lease, granted with ttl, until ctx is done or the lease
// is lost, and returns why: ctx's error; ErrLeaseNotFound when etcd says
// the lease is gone (expired, revoked); ErrLeaseExpired when no renewal
// succeeded for a whole TTL, counted from the call and then from each
// renewal (etcd unreachable: the lease must be presumed gone, as clientv3
// does); ErrClosed. Renewals are sent every third of the TTL etcd reports,
// as clientv3 does; a broken stream is reopened after RetryWait on
// whichever endpoint is up.
func (c *Client) KeepAlive(ctx context.Context, lease int64, ttl time.Duration) error {
	kctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	expiry := time.AfterFunc(ttl, func() { cancel(ErrLeaseExpired) })
	defer expiry.Stop()
	var last error // of the last broken stream, for the expiry error
	for {
		err := c.keepAliveStream(kctx, lease, expiry)
		switch cause := context.Cause(kctx); {
		case c.ctx.Err() != nil:
			return ErrClosed
		case errors.Is(cause, ErrLeaseExpired) && last != nil:
			return fmt.Errorf("etcdlite: keepalive lease %x: %w: %w", lease, cause, last)
		case cause != nil:
			return fmt.Errorf("etcdlite: keepalive lease %x: %w", lease, cause)
		case errors.Is(err, ErrLeaseNotFound):
			return fmt.Errorf("etcdlite: keepalive lease %x: %w", lease, err)
		}
		last = err
		sleep(kctx, c.retryWait)
	}
}

// keepAliveStream renews lease on one stream until the stream breaks,
// the lease is gone or kctx is done, and pushes expiry back on every
// renewal.
func (c *Client) keepAliveStream(kctx context.Context, lease int64, expiry *time.Timer) error {
	sctx, cancel := c.callCtx(kctx)
	defer cancel()
	stream, err := c.conn.NewStream(sctx, &keepAliveDesc, methodLeaseKeepAlive)
	if err != nil {
		return c.wrap(err)
	}
	req := &pb.LeaseKeepAliveRequest{ID: lease}
	for {
		var resp pb.LeaseKeepAliveResponse
		err := stream.SendMsg(req)
		if err == nil || errors.Is(err, io.EOF) { // io.EOF: RecvMsg has the stream's status
			err = stream.RecvMsg(&resp)
		}
		if err != nil {
			return c.wrap(err)
		}
		if resp.GetTTL() <= 0 {
			return ErrLeaseNotFound
		}
		ttl := time.Duration(resp.GetTTL()) * time.Second
		expiry.Reset(ttl)
		if !sleep(sctx, ttl/3) {
			return sctx.Err()
		}
	}
}
