// Package cpreg keeps an instance registered through the control plane's
// RegistryService (issue 14) instead of writing etcd itself: the control
// plane writes the instance's key under an etcd lease and checks that the
// caller's SVID is the instance's service. The lease lives in etcd, so
// every control plane of the mesh can renew it: when one stops answering,
// the registration moves to the next address at once and keeps its lease;
// when the lease is gone (expired while no control plane answered, or the
// key was deleted) it registers again. The sidecar's slim build links it
// (generated code of shoal.registry.v1 only, no management API types).
package cpreg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/shoal-mesh/shoal/proto/shoal/registry/v1"
	"github.com/shoal-mesh/shoal/registry"
)

// Config configures Register.
type Config struct {
	// Servers are the control planes' xDS addresses, tried in order.
	// Required.
	Servers []string
	// DialOptions carry the transport credentials (the sidecar's SVID).
	DialOptions []grpc.DialOption
	// Instance is what is registered. Required (validated).
	Instance registry.Instance
	// TTL of the lease; zero means registry.DefaultTTL.
	TTL time.Duration
	// RetryMin and RetryMax bound the jittered backoff between rounds of
	// attempts over every server; zero means 200ms and 5s.
	RetryMin, RetryMax time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Registration keeps one instance registered until Deregister or Close.
// Its methods are safe for concurrent use.
type Registration struct {
	cfg   Config
	log   *slog.Logger
	conns []*grpc.ClientConn
	req   *registryv1.RegisterRequest

	cancel context.CancelFunc
	done   chan struct{} // closed when the keepalive goroutine exits

	// mu guards lease, ttl and server (the index of the control plane in
	// use).
	mu     sync.Mutex
	lease  int64
	ttl    time.Duration
	server int

	stopOnce sync.Once
	stopErr  error
}

// Register registers cfg.Instance through the first control plane that
// answers, retrying every server in rounds until ctx is done, and keeps it
// registered in the background. A refusal (PermissionDenied,
// Unauthenticated, InvalidArgument) is returned at once.
func Register(ctx context.Context, cfg Config) (_ *Registration, err error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("cpreg: no control plane address")
	}
	if err := cfg.Instance.Validate(); err != nil {
		return nil, err
	}
	cfg.Instance.Normalize()
	if cfg.TTL <= 0 {
		cfg.TTL = registry.DefaultTTL
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 200 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	in := cfg.Instance
	r := &Registration{
		cfg: cfg, log: cfg.Logger.With("component", "registry", "instance", in.Service+"/"+in.ID, "via", "controlplane"),
		done: make(chan struct{}),
		req: &registryv1.RegisterRequest{Instance: &registryv1.Instance{
			Id: in.ID, Service: in.Service, Address: in.Address, Port: uint32(in.Port), Protocol: string(in.Protocol),
			Zone: in.Zone, Weight: uint32(in.Weight), Metadata: maps.Clone(in.Metadata), Tls: in.TLS,
		}, Ttl: durationpb.New(cfg.TTL)},
	}
	defer func() {
		if err != nil {
			r.closeConns()
		}
	}()
	for _, s := range cfg.Servers {
		cc, err := grpc.NewClient(s, cfg.DialOptions...)
		if err != nil {
			return nil, fmt.Errorf("cpreg: control plane %q: %w", s, err)
		}
		r.conns = append(r.conns, cc)
	}
	if err := r.registerRounds(ctx, 0); err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.run(lctx)
	return r, nil
}

// LeaseID returns the current lease.
func (r *Registration) LeaseID() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lease
}

// Server returns the address of the control plane in use.
func (r *Registration) Server() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg.Servers[r.server]
}

func (r *Registration) client(i int) registryv1.RegistryServiceClient {
	return registryv1.NewRegistryServiceClient(r.conns[i%len(r.conns)])
}

// refused reports whether err is a refusal that retrying cannot change.
func refused(err error) bool {
	switch status.Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument:
		return true
	}
	return false
}

// registerRounds registers through each server in turn, starting at
// start, in rounds with backoff until one succeeds, ctx is done or a
// server refuses.
func (r *Registration) registerRounds(ctx context.Context, start int) error {
	backoff := r.cfg.RetryMin
	for {
		var errs []error
		for k := range len(r.conns) {
			i := (start + k) % len(r.conns)
			actx, cancel := context.WithTimeout(ctx, r.cfg.TTL)
			resp, err := r.client(i).Register(actx, r.req)
			cancel()
			if err == nil {
				r.mu.Lock()
				r.lease, r.ttl, r.server = resp.GetLeaseId(), resp.GetTtl().AsDuration(), i
				r.mu.Unlock()
				r.log.Info("registered through the control plane", "server", r.cfg.Servers[i], "lease", fmt.Sprintf("%x", resp.GetLeaseId()), "ttl", resp.GetTtl().AsDuration())
				return nil
			}
			if refused(err) {
				return fmt.Errorf("cpreg: control plane %s refused the registration: %s", r.cfg.Servers[i], status.Convert(err).Message())
			}
			errs = append(errs, fmt.Errorf("%s: %w", r.cfg.Servers[i], err))
		}
		r.log.Warn("no control plane took the registration; retrying", "err", errors.Join(errs...), "backoff", backoff)
		if err := sleep(ctx, backoff); err != nil {
			return fmt.Errorf("cpreg: register: %w", errors.Join(append(errs, err)...))
		}
		backoff = min(r.cfg.RetryMax, backoff*2)
	}
}

// run renews the lease a third of its TTL apart until ctx is done.
func (r *Registration) run(ctx context.Context) {
	defer close(r.done)
	for {
		r.mu.Lock()
		ttl := r.ttl
		r.mu.Unlock()
		if sleep(ctx, max(ttl/3, 100*time.Millisecond)) != nil {
			return
		}
		r.renew(ctx)
	}
}

// renew renews the lease through the server in use, then the others;
// registers again when the lease is gone.
func (r *Registration) renew(ctx context.Context) {
	r.mu.Lock()
	lease, ttl, start := r.lease, r.ttl, r.server
	r.mu.Unlock()
	req := &registryv1.KeepAliveRequest{LeaseId: lease, Service: r.cfg.Instance.Service, InstanceId: r.cfg.Instance.ID}
	for k := range len(r.conns) {
		i := (start + k) % len(r.conns)
		actx, cancel := context.WithTimeout(ctx, max(ttl/3, time.Second))
		_, err := r.client(i).KeepAlive(actx, req)
		cancel()
		switch {
		case err == nil:
			if i != start {
				r.mu.Lock()
				r.server = i
				r.mu.Unlock()
				r.log.Info("renewing through another control plane", "server", r.cfg.Servers[i], "was", r.cfg.Servers[start])
			}
			return
		case ctx.Err() != nil:
			return
		case status.Code(err) == codes.NotFound:
			r.log.Warn("registration lost; registering again", "reason", status.Convert(err).Message(), "lease", fmt.Sprintf("%x", lease))
			r.reregister(ctx, i)
			return
		}
		r.log.Warn("lease renewal failed; trying the next control plane", "server", r.cfg.Servers[i], "err", err)
	}
}

// reregister registers again until it succeeds or ctx is done; a refusal
// is logged and retried with backoff (credentials may come back).
func (r *Registration) reregister(ctx context.Context, start int) {
	for ctx.Err() == nil {
		err := r.registerRounds(ctx, start)
		if err == nil {
			return
		}
		if ctx.Err() == nil {
			r.log.Error("registering again failed", "err", err)
			sleep(ctx, r.cfg.RetryMax)
		}
	}
}

// Deregister stops the renewals and revokes the lease through the control
// plane in use, then the others; when none answers the instance lapses
// within the TTL and the error says so. Calling it again returns the first
// result.
func (r *Registration) Deregister(ctx context.Context) error {
	r.stopOnce.Do(func() {
		r.cancel()
		<-r.done
		defer r.closeConns()
		r.mu.Lock()
		lease, start := r.lease, r.server
		r.mu.Unlock()
		req := &registryv1.DeregisterRequest{LeaseId: lease, Service: r.cfg.Instance.Service, InstanceId: r.cfg.Instance.ID}
		var errs []error
		for k := range len(r.conns) {
			i := (start + k) % len(r.conns)
			if _, err := r.client(i).Deregister(ctx, req); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.cfg.Servers[i], err))
				continue
			}
			return
		}
		r.stopErr = fmt.Errorf("cpreg: deregister %s/%s (it lapses within its TTL): %w", r.cfg.Instance.Service, r.cfg.Instance.ID, errors.Join(errs...))
	})
	return r.stopErr
}

// Close deregisters with a 5s timeout.
func (r *Registration) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.Deregister(ctx)
}

func (r *Registration) closeConns() {
	for _, cc := range r.conns {
		cc.Close()
	}
}

// sleep waits d with jitter (half to all of it), or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d/2 + rand.N(d/2+1))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
