package h2

import (
	"context"
	"net"
	"sync"
	"time"
)

// DialFunc opens a connection to an upstream address. It is the one place
// where upstream connections are made, so that TLS (ALPN h2) can be
// plugged in by wrapping it.
type DialFunc func(ctx context.Context, addr string) (net.Conn, error)

// PoolConfig configures the upstream connections of one endpoint.
type PoolConfig struct {
	// Dial opens connections; nil means plain TCP (h2c prior knowledge).
	Dial DialFunc
	// IdleTimeout closes a connection that had no stream for this long.
	// Zero means never.
	IdleTimeout time.Duration
	// Group counts the pool's goroutines (connections, dials), so that the
	// owner of many pools waits for all of them once (Wait); nil means a
	// group of the pool's own.
	Group *sync.WaitGroup
}

// Pool holds the multiplexed connections to one upstream endpoint: a
// stream goes on a connection with room under the upstream's
// SETTINGS_MAX_CONCURRENT_STREAMS; a connection is dialed when none has
// room. Safe for concurrent use.
type Pool struct {
	addr string
	cfg  PoolConfig

	// mu guards the fields below.
	mu      sync.Mutex
	conns   []*ClientConn
	dialing bool
	waiters []func(*ClientConn, error)
	closed  bool
	wg      *sync.WaitGroup // cfg.Group: every goroutine of the pool
}

// NewPool returns an empty pool for addr.
func NewPool(addr string, cfg PoolConfig) *Pool {
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	if cfg.Group == nil {
		cfg.Group = new(sync.WaitGroup)
	}
	return &Pool{addr: addr, cfg: cfg, wg: cfg.Group}
}

// Get returns a connection that takes another stream, or nil.
func (p *Pool) Get() *ClientConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cc := range p.conns {
		if cc.usable.Load() {
			return cc
		}
	}
	return nil
}

// Wait calls fn once a connection may have room: with a newly dialed one,
// with nil after a stream or setting made room (call Get again), or with
// the dial error. A dial is started when none is under way; it gives up
// after timeout. fn is called on another goroutine, unless the pool is
// closed: then Wait returns net.ErrClosed.
func (p *Pool) Wait(timeout time.Duration, fn func(*ClientConn, error)) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return net.ErrClosed
	}
	p.waiters = append(p.waiters, fn)
	if p.dialing {
		p.mu.Unlock()
		return nil
	}
	p.dialing = true
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		p.dial(timeout)
	}()
	return nil
}

func (p *Pool) dial(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	nc, err := p.cfg.Dial(ctx, p.addr)
	cancel()
	p.mu.Lock()
	p.dialing = false
	var cc *ClientConn
	if err == nil && p.closed {
		nc.Close()
		err = net.ErrClosed
	}
	if err == nil {
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		cc = newClientConn(p, nc)
		p.conns = append(p.conns, cc)
	}
	waiters := p.waiters
	p.waiters = nil
	p.mu.Unlock()
	for _, fn := range waiters {
		fn(cc, err)
	}
}

// wake tells the waiters to try Get again.
func (p *Pool) wake() {
	p.mu.Lock()
	waiters := p.waiters
	p.waiters = nil
	if len(waiters) > 0 && !p.closed {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for _, fn := range waiters {
				fn(nil, nil)
			}
		}()
	}
	p.mu.Unlock()
}

// remove forgets a closed connection.
func (p *Pool) remove(cc *ClientConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range p.conns {
		if c == cc {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			return
		}
	}
}

// Close closes every connection, failing their streams; later Waits
// fail. It does not block: Join waits for the goroutines.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	conns := append([]*ClientConn(nil), p.conns...)
	p.mu.Unlock()
	for _, cc := range conns {
		cc.close()
	}
}

// Join waits until the goroutines of the pool's group have ended: call it
// after Close (of every pool of the group).
func (p *Pool) Join() { p.wg.Wait() }
