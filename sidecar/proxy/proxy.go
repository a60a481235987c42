package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-mesh/shoal/internal/metric"
	"github.com/shoal-mesh/shoal/sidecar/accesslog"
	"github.com/shoal-mesh/shoal/sidecar/route"
	"github.com/shoal-mesh/shoal/sidecar/tracing"
)

// ErrClosed is returned by Serve after Shutdown or Close.
var ErrClosed = errors.New("proxy: closed")

// Defaults for zero Config fields.
const (
	DefaultReadHeaderTimeout   = 10 * time.Second
	DefaultIdleTimeout         = 60 * time.Second
	DefaultUpstreamIdleTimeout = 4 * time.Second
	DefaultMaxIdlePerHost      = 256
	DefaultMaxHeaderBytes      = 60 << 10
	DefaultMaxHeaders          = 100
	DefaultMaxRequestLine      = 8 << 10
	DefaultReplayBufferBytes   = 64 << 10
	DefaultConnectRetries      = 2
	DefaultWriteTimeout        = 60 * time.Second
	DefaultTCPIdleTimeout      = time.Hour
	DefaultStreamIdleTimeout   = 5 * time.Minute
)

// Config configures a Proxy. Zero fields take the documented defaults.
type Config struct {
	// Logger receives warnings; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the proxy's metrics; nil means unregistered.
	Registerer metric.Registerer
	// Tracer, when set, makes a span per HTTP/1.1 request and rewrites the
	// traceparent the upstream gets (sidecar/tracing); nil passes the
	// trace context through untouched.
	Tracer *tracing.Tracer
	// Service is this proxy's service: the source label of the per-edge
	// metrics (shoal_requests_total, shoal_request_duration_seconds).
	Service string
	// AccessLog, when set, gets a line per request (sidecar/accesslog);
	// nil means no access log.
	AccessLog *accesslog.Logger
	// ReadHeaderTimeout bounds reading a request head once its first byte
	// arrived (slowloris). Zero means DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes client connections idle between requests (and
	// bounds each body read). Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// UpstreamIdleTimeout retires pooled upstream connections; keep it
	// below the upstream's keep-alive timeout (Node.js: 5 s). Zero means
	// DefaultUpstreamIdleTimeout.
	UpstreamIdleTimeout time.Duration
	// MaxIdlePerHost caps pooled connections per endpoint. Zero means
	// DefaultMaxIdlePerHost.
	MaxIdlePerHost int
	// MaxHeaderBytes caps a request head (431). Zero means 60 KiB.
	MaxHeaderBytes int
	// MaxHeaders caps the number of request header fields (431). Zero
	// means 100.
	MaxHeaders int
	// MaxRequestLine caps the request line (414). Zero means 8 KiB.
	MaxRequestLine int
	// ReplayBufferBytes is the largest request body buffered so that the
	// request can be retried. Zero means 64 KiB; negative disables.
	ReplayBufferBytes int
	// ConnectRetries is how many connect failures a request may retry on
	// other endpoints when its route has no larger retry budget. Zero
	// means DefaultConnectRetries.
	ConnectRetries int
	// WriteTimeout closes a client connection when no byte of a response
	// could be written to it for this long: a client that stops reading
	// must not hold its connection, goroutine and upstream connection
	// forever. It is progress-based (nginx's send_timeout, x/net/http2's
	// WriteByteTimeout): a large response to a client that keeps reading
	// may take longer. It applies to HTTP/1.1 responses, upgraded
	// (WebSocket) connections and h2c connections. Zero means
	// DefaultWriteTimeout; negative means none.
	WriteTimeout time.Duration
	// TCPIdleTimeout closes both sides of a proxied TCP connection when no
	// byte moved in either direction for this long (Envoy's tcp_proxy
	// idle_timeout). Zero means DefaultTCPIdleTimeout; negative means
	// never (then io.Copy moves the bytes, spliced in the kernel on Linux;
	// tracking the timeout copies them through a 16 KiB buffer per
	// direction).
	TCPIdleTimeout time.Duration
	// StreamIdleTimeout bounds an HTTP/1.1 upstream exchange while it makes
	// no progress (Envoy's stream_idle_timeout): a streamed request body
	// the upstream does not take, a response head that does not come when
	// the route sets no timeout, a response body that stalls. The route
	// timeout runs from the end of the request to the response headers
	// only, so a long upload, download or event stream goes on as long as
	// bytes move. Zero means DefaultStreamIdleTimeout; negative means none.
	StreamIdleTimeout time.Duration
	// UpstreamTLS originates mTLS to endpoints with a route.Endpoint
	// ServerID; nil means such endpoints cannot be reached (their
	// connects fail).
	UpstreamTLS UpstreamTLS
}

// UpstreamTLS gives the client TLS configuration for connections to an
// endpoint that must present serverID (a SPIFFE ID). It is called per new
// upstream connection, must be safe for concurrent use and must not block;
// the returned config must not be modified by the caller.
type UpstreamTLS interface {
	ClientConfig(serverID string) *tls.Config
}

// RawTLSConn is implemented by an inbound TLS connection whose *tls.Conn
// runs over a socket from NewTLSSock (the sidecar's mTLS listener). Once
// RawTLS returns the connection (its handshake done and its peer
// accepted), the proxy serves it from inside raw read callbacks as it
// does plain connections: the record layer reads and writes with raw
// system calls there, and no read is wasted between keep-alive requests.
type RawTLSConn interface {
	RawTLS() *tls.Conn
}

// NewTLSSock wraps the TCP connection nc for a *tls.Conn the proxy serves
// as a RawTLSConn (tls.Server(NewTLSSock(nc), cfg)); outside the proxy's
// callbacks it is nc.
func NewTLSSock(nc net.Conn) net.Conn { return newTLSSock(nc) }

// PeerIdentity is implemented by client connections that authenticated
// their peer (the sidecar's mTLS inbound listener): the proxy passes the
// identity to the app in x-forwarded-client-cert.
type PeerIdentity interface {
	// XFCC returns the x-forwarded-client-cert value for the connection
	// (Envoy's format, By=<own ID>;URI=<peer ID>), or nil. It is called
	// after the first request was read (the handshake is done).
	XFCC() []byte
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	def(&c.UpstreamIdleTimeout, DefaultUpstreamIdleTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.TCPIdleTimeout, DefaultTCPIdleTimeout)
	def(&c.StreamIdleTimeout, DefaultStreamIdleTimeout)
	defInt(&c.MaxIdlePerHost, DefaultMaxIdlePerHost)
	defInt(&c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	defInt(&c.MaxHeaders, DefaultMaxHeaders)
	defInt(&c.MaxRequestLine, DefaultMaxRequestLine)
	defInt(&c.ReplayBufferBytes, DefaultReplayBufferBytes)
	defInt(&c.ConnectRetries, DefaultConnectRetries)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Proxy is the sidecar data path. All methods are safe for concurrent use.
type Proxy struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	loads   *route.Loads
	bound   atomic.Pointer[binding]
	// tlsAddrs maps the address of every endpoint that requires mTLS to
	// its server ID, for the HTTP/2 path's dialer (which dials by address).
	tlsAddrs atomic.Pointer[map[string]string]
	h2       *h2Handler
	// h2wg counts the goroutines of every upstream HTTP/2 pool (h2.Pool).
	h2wg sync.WaitGroup
	// noCluster counts requests answered before a cluster was chosen.
	noCluster *clusterState

	// stateMu guards states; held only by SetTable and admin snapshots.
	stateMu sync.Mutex
	states  map[string]*clusterState

	shutting atomic.Bool
	// mu guards listeners and conns.
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	parked    map[*upConn]struct{} // attempts left for another endpoint (park)
	wg        sync.WaitGroup       // connection and parked-attempt goroutines
}

// New returns a Proxy with an empty table: every request gets 404 until
// SetTable installs a table.
func New(cfg Config) (*Proxy, error) {
	cfg = cfg.withDefaults()
	if cfg.MaxHeaderBytes < cfg.MaxRequestLine {
		return nil, fmt.Errorf("proxy: MaxHeaderBytes %d below MaxRequestLine %d", cfg.MaxHeaderBytes, cfg.MaxRequestLine)
	}
	m, err := newMetrics(cfg.Registerer, cfg.Service)
	if err != nil {
		return nil, fmt.Errorf("proxy: register metrics: %w", err)
	}
	p := &Proxy{
		cfg: cfg, log: cfg.Logger.With("component", "proxy"), metrics: m, loads: route.NewLoads(),
		states: make(map[string]*clusterState), listeners: make(map[net.Listener]struct{}), conns: make(map[*conn]struct{}), parked: make(map[*upConn]struct{}),
	}
	if err := p.registerBreakerMetrics(cfg.Registerer); err != nil {
		return nil, fmt.Errorf("proxy: register metrics: %w", err)
	}
	p.h2 = newH2Handler(p)
	p.noCluster = p.clusterState("")
	empty, _ := route.New(route.Config{})
	p.SetTable(empty)
	return p, nil
}

// Loads returns the in-flight counter store to pass as route.Config.Loads
// when building tables for this proxy, so that least-request and bounded
// load see requests that started under an earlier table.
func (p *Proxy) Loads() *route.Loads { return p.loads }

// SetTable installs t atomically: requests that already picked a route
// finish with the old table; later requests see t. Pooled connections and
// outlier state of endpoints that t keeps are preserved. t must not be
// nil. SetTable calls are serialized; it does not block on traffic.
func (p *Proxy) SetTable(t *route.Table) {
	p.bound.Store(p.bind(t))
}

// Table returns the current table.
func (p *Proxy) Table() *route.Table { return p.bound.Load().table }

// ModeKind selects how a listener picks a route.
type ModeKind uint8

// Listener modes.
const (
	// Outbound routes by the Host header through the table's virtual hosts.
	Outbound ModeKind = iota
	// Inbound sends everything to Mode.Cluster (the local app). Client
	// X-Forwarded-* headers are trusted only from mesh peers: loopback, an
	// address of an endpoint in the table, a connection that authenticated
	// its peer (PeerIdentity: mTLS), or any peer when XFFTrustedHops is
	// set.
	Inbound
	// Fixed serves one upstream on a local port: routes of the virtual host
	// matching Mode.Cluster as the host apply, falling back to Mode.Cluster.
	// A TCP cluster is proxied as raw bytes.
	Fixed
	// Gateway is Outbound at the edge: client X-Forwarded-* headers are not
	// trusted unless XFFTrustedHops is set.
	Gateway
)

// Mode configures one listener. See Outbound, Inbound, Fixed, Gateway.
type Mode struct {
	// Kind is the routing mode.
	Kind ModeKind
	// Cluster is the cluster for Inbound and Fixed.
	Cluster string
	// XFFTrustedHops (Gateway) is the number of trusted proxies in front
	// of the gateway: the client IP is the XFFTrustedHops-th address from
	// the right of X-Forwarded-For (Envoy xff_num_trusted_hops). Zero
	// means the peer address, and incoming X-Forwarded-* are replaced.
	XFFTrustedHops int
}

// trustsForwarded reports whether incoming X-Forwarded-* from peer are
// kept and appended to: the local app (outbound, fixed) is trusted; on
// inbound listeners mesh peers only (loopback, or an endpoint address of
// the table b: a sidecar or gateway of the mesh), so that an arbitrary
// client cannot forge the client IP an app sees; the edge only with
// trusted hops. An invalid peer (not IP) is not trusted.
func (m Mode) trustsForwarded(b *binding, peer netip.Addr) bool {
	switch {
	case m.Kind != Gateway && m.Kind != Inbound, m.XFFTrustedHops > 0:
		return true
	case m.Kind == Gateway || !peer.IsValid():
		return false
	case peer.IsLoopback():
		return true
	}
	_, ok := b.peers[peer]
	return ok
}

// Serve accepts connections on l until Shutdown and serves them in mode.
// HTTP/1.1 and h2c prior-knowledge connections are detected per
// connection. A failed Accept (out of file descriptors, a connection
// aborted before it was accepted) is counted, logged at most every 10 s and
// retried with a backoff of 5 ms doubling to 1 s; Serve returns only when
// l is closed. It always returns a non-nil error; after Shutdown it is
// ErrClosed. The proxy owns l from now on and closes it. l may be any
// net.Listener (a TLS listener, for one).
func (p *Proxy) Serve(l net.Listener, mode Mode) error {
	if !p.trackListener(l, true) {
		l.Close()
		return ErrClosed
	}
	defer p.trackListener(l, false)
	var backoff acceptBackoff
	for {
		nc, err := l.Accept()
		if err != nil {
			if p.shutting.Load() {
				return ErrClosed
			}
			if p.retryAccept(&backoff, l, err) {
				continue
			}
			return err
		}
		backoff.delay = 0
		c := p.newConn(nc, mode)
		if !p.trackConn(c, true) {
			nc.Close()
			return ErrClosed
		}
		p.wg.Add(1)
		go c.serve()
	}
}

func (p *Proxy) trackListener(l net.Listener, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.shutting.Load() {
			return false
		}
		p.listeners[l] = struct{}{}
	} else {
		delete(p.listeners, l)
	}
	return true
}

func (p *Proxy) trackConn(c *conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.shutting.Load() {
			return false
		}
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
}

// Shutdown stops accepting, closes idle client connections, lets in-flight
// requests finish (their connections close afterwards), and closes pooled
// upstream connections. When ctx ends first, the remaining connections are
// closed and ctx's error is returned. Shutdown waits for every connection
// goroutine before returning; it is idempotent.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.shutting.Store(true)
	for l := range p.listeners {
		l.Close()
	}
	for uc := range p.parked {
		uc.nc.Close() // its goroutine ends at once
	}
	p.mu.Unlock()
	p.h2.shutdown()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var err error
	for !p.closeIdle() {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			p.closeAll()
		case <-tick.C:
			continue
		}
		break
	}
	p.wg.Wait()
	p.h2.close()
	p.stateMu.Lock()
	for _, cs := range p.states {
		cs.mu.Lock()
		for _, h := range cs.hosts {
			h.pool.shutdown()
			h.closeH2()
		}
		cs.mu.Unlock()
	}
	p.stateMu.Unlock()
	p.h2wg.Wait()
	return err
}

// Close is Shutdown with an already expired context.
func (p *Proxy) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// closeIdle wakes idle connections so they exit, and reports whether no
// connection is left.
func (p *Proxy) closeIdle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.closeIfIdle()
	}
	return len(p.conns) == 0
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.nc.Close()
	}
}
