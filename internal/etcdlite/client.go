// Package etcdlite is a minimal etcd v3 client: exactly the calls an
// instance registration makes (lease grant, keepalive and revoke; put,
// count and delete of one key; a watch for that key's deletion), spoken
// over plain gRPC with hand-encoded messages.
//
// It exists so that the sidecar binary does not link
// go.etcd.io/etcd/client/v3, its gogo-generated API types and zap: their
// package initialisation alone costs the sidecar megabytes of memory
// (issue #7). The control plane and the CLI keep clientv3.
//
// Wire compatibility: the messages are etcdserverpb's (api/v3/etcdserverpb/
// rpc.proto, mvccpb/kv.proto), encoded with protowire; only the fields
// shoal uses are written or read, and unknown fields are skipped, as
// protobuf requires. The connection behaves like internal/etcdclient's
// clientv3: round robin over the endpoints, calls wait for a ready
// connection (clientv3's WaitForReady default), reconnect backoff capped at
// one second, keepalive pings every 5s.
package etcdlite

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
)

// Errors a caller may branch on. Other failures wrap the gRPC status etcd
// returned (status.Code works on them) or the context's error.
var (
	// ErrLeaseNotFound means etcd does not know the lease: it expired, was
	// revoked, or was lost in a restore (etcd's "requested lease not
	// found", codes.NotFound, or a keepalive answered with TTL 0).
	ErrLeaseNotFound = errors.New("etcdlite: lease not found (expired or revoked)")
	// ErrLeaseExpired means KeepAlive got no renewal from etcd for a whole
	// TTL (etcd unreachable), so the lease must be presumed gone.
	ErrLeaseExpired = errors.New("etcdlite: lease not renewed within its TTL (etcd unreachable)")
	// ErrClosed is returned by calls on a closed Client.
	ErrClosed = errors.New("etcdlite: client closed")
)

// Config configures a Client.
type Config struct {
	// Endpoints are etcd client URLs or addresses, all of one cluster:
	// "host:port", "http://host:port", "https://host:port",
	// "unix:///path" or "unixs:///path" (the schemes clientv3 accepts).
	// https and unixs use TLS; they cannot be mixed with plaintext ones.
	// Required.
	Endpoints []string
	// TLS configures https and unixs endpoints; nil means the host's root
	// CAs and the endpoint's host as server name (clientv3's behaviour
	// without a TLS config). It must not be modified after New.
	TLS *tls.Config
	// RetryWait is the pause before re-opening a broken keepalive or watch
	// stream, and the cap of the backoff between retries of a call etcd
	// answered with Unavailable; zero means 500ms (clientv3's
	// retryConnWait).
	RetryWait time.Duration
}

// Client is a connection to an etcd cluster. It is safe for concurrent use.
type Client struct {
	conn      *grpc.ClientConn
	retryWait time.Duration
	// ctx is the client's lifetime: cancelled by Close, it ends every call
	// and stream.
	ctx    context.Context
	cancel context.CancelFunc
}

// Connection tuning, the same as internal/etcdclient's. gRPC's default
// reconnect backoff grows to two minutes; after an etcd restart that would
// leave the registration waiting long after etcd is back, so it is capped
// at one second.
var (
	connectParams = grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
		MinConnectTimeout: 2 * time.Second,
	}
	keepaliveParams = keepalive.ClientParameters{Time: 5 * time.Second, Timeout: 3 * time.Second}
)

// New returns a client for cfg.Endpoints. It does not wait for a
// connection: calls do (until their context ends), so etcd may come up
// after New.
func New(cfg Config) (*Client, error) {
	eps, secure, err := parseEndpoints(cfg.Endpoints)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if secure {
		creds = credentials.NewTLS(cfg.TLS)
	}
	if cfg.RetryWait <= 0 {
		cfg.RetryWait = 500 * time.Millisecond
	}
	r := manual.NewBuilderWithScheme("etcdlite")
	state := resolver.State{}
	for _, ep := range eps {
		state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: ep.addr, ServerName: ep.serverName}}})
	}
	r.InitialState(state)
	conn, err := grpc.NewClient("etcdlite:///"+eps[0].authority,
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithConnectParams(connectParams),
		grpc.WithKeepaliveParams(keepaliveParams),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true), grpc.ForceCodecV2(rawCodec{})),
	)
	if err != nil {
		return nil, fmt.Errorf("etcdlite: %v: %w", cfg.Endpoints, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{conn: conn, retryWait: cfg.RetryWait, ctx: ctx, cancel: cancel}, nil
}

// Close ends every call and stream in progress and closes the connection.
// It is idempotent.
func (c *Client) Close() error {
	c.cancel()
	err := c.conn.Close()
	if status.Code(err) == codes.Canceled { // already closed
		return nil
	}
	return err
}

// callCtx returns ctx cancelled also when the client closes, with etcd's
// require-leader metadata: a member cut off from the cluster's leader fails
// the call (or ends the stream) with Unavailable instead of hanging, so the
// client can move to another member.
func (c *Client) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	return metadata.AppendToOutgoingContext(ctx, "hasleader", "true"), func() { stop(); cancel() }
}

// invoke makes one unary call. A repeatable call (one that is safe to send
// twice) is retried while etcd answers Unavailable (no leader, leader
// changed, connection lost mid-call), as clientv3 retries them.
func (c *Client) invoke(ctx context.Context, method string, req []byte, repeatable bool) ([]byte, error) {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	wait := 25 * time.Millisecond
	for {
		var resp []byte
		err := c.conn.Invoke(ctx, method, &req, &resp)
		if err == nil {
			return resp, nil
		}
		if !repeatable || status.Code(err) != codes.Unavailable {
			return nil, c.wrap(err)
		}
		if !sleep(ctx, wait/2+rand.N(wait/2+1)) {
			return nil, c.wrap(err)
		}
		wait = min(2*wait, c.retryWait)
	}
}

// wrap turns a call's error into the package's: ErrClosed once closed,
// ErrLeaseNotFound for NotFound (the only NotFound the lease and KV calls
// return), else err as is.
func (c *Client) wrap(err error) error {
	switch {
	case c.ctx.Err() != nil:
		return ErrClosed
	case status.Code(err) == codes.NotFound:
		return fmt.Errorf("%w: %s", ErrLeaseNotFound, status.Convert(err).Message())
	}
	return err
}

// sleep waits d or until ctx is done, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
