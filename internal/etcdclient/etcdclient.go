// Package etcdclient creates the etcd clients shoal uses, tuned to notice a
// returning etcd quickly.
package etcdclient

import (
	"crypto/tls"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// New returns a client for endpoints. gRPC's default reconnect backoff grows
// to two minutes; after an etcd restart that would leave registrations and
// watches waiting long after etcd is back, so the backoff here is capped at
// one second. internal/etcdlite, the sidecar's client, uses the same
// tuning.
func New(endpoints []string) (*clientv3.Client, error) {
	return NewTLS(endpoints, nil)
}

// NewTLS is New with TLS (https endpoints, a client certificate) when tc
// is not nil.
func NewTLS(endpoints []string, tc *tls.Config) (*clientv3.Client, error) {
	return NewAuth(endpoints, tc, "", "")
}

// NewAuth is NewTLS with etcd's user authentication when username is not
// empty.
func NewAuth(endpoints []string, tc *tls.Config, username, password string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		TLS:                  tc,
		Username:             username,
		Password:             password,
		Endpoints:            endpoints,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Logger:               zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcdclient: %v: %w", endpoints, err)
	}
	return cli, nil
}
