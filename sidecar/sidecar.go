package sidecar

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-mesh/shoal/identity"
	"github.com/shoal-mesh/shoal/internal/adminauth"
	"github.com/shoal-mesh/shoal/internal/metric"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/registry/gossip"
	"github.com/shoal-mesh/shoal/sidecar/accesslog"
	sidecaridentity "github.com/shoal-mesh/shoal/sidecar/identity"
	"github.com/shoal-mesh/shoal/sidecar/lrsclient"
	"github.com/shoal-mesh/shoal/sidecar/proxy"
	"github.com/shoal-mesh/shoal/sidecar/route"
	"github.com/shoal-mesh/shoal/sidecar/tracing"
	"github.com/shoal-mesh/shoal/sidecar/xdsclient"
	"github.com/shoal-mesh/shoal/sidecar/xdstable"
)

// Proxy is a running sidecar or gateway. Create it with New, run it with
// Run.
type Proxy struct {
	cfg Config
	log *slog.Logger

	reg *metric.Registry // served on /metrics

	proxy *proxy.Proxy
	xds   *xdsclient.Client
	// id and mtls are the workload identity and its TLS configs; nil
	// without a join token.
	id   *sidecaridentity.Client
	mtls *mtls
	// lrs reports load to the control plane over lrsConn (closed by
	// release).
	lrs     *lrsclient.Client
	lrsConn *grpc.ClientConn
	// accessLog writes the access log (nil: off) to accessFile when it is
	// a file (closed by release).
	accessLog  *accesslog.Logger
	accessFile *os.File
	// tracer exports spans over otlpConn (both nil without --otlp-endpoint).
	tracer   *tracing.Tracer
	otlpConn *grpc.ClientConn
	member   *gossip.Member // nil without gossip
	// gossipTicketExp is when the member's ticket expires; zero when its
	// keys did not come from the control plane. Set in Run before the
	// follow goroutine starts, then owned by it.
	gossipTicketExp time.Time
	self            registry.Instance

	listeners []served     // bound in New, served in Run
	adminLis  net.Listener // nil without admin
	admin     *http.Server // nil without admin
	snap      atomic.Pointer[xdsclient.Snapshot]
	applied   atomic.Bool   // a table from xDS (or the state dir) is in place
	rebuild   chan struct{} // capacity 1: a table rebuild is wanted
	buildErr  atomic.Pointer[string]
	tables    tableWatch // told of every installed table (drain gate)
	drainM    *drainMetrics

	// knownMu guards known: every service seen in a snapshot since start
	// (xdstable.Options.Known).
	knownMu sync.Mutex
	known   map[string]struct{}

	closeOnce sync.Once
	trim      *memTrimmer // returns freed heap after config updates
}

// served is a bound listener and how it routes.
type served struct {
	name string
	l    net.Listener
	mode proxy.Mode
}

// New validates cfg, binds every listener and joins gossip, so that when
// it returns the addresses are known. Serving starts in Run. On error
// everything acquired is released.
func New(cfg Config) (_ *Proxy, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	p := &Proxy{cfg: cfg, rebuild: make(chan struct{}, 1), trim: newMemTrimmer()}
	p.log = cfg.Logger.With("component", "sidecar")
	if cfg.Mode == ModeGateway {
		p.log = cfg.Logger.With("component", "gateway")
	}
	defer func() {
		if err != nil {
			p.release()
		}
	}()
	p.reg = cfg.Metrics
	if p.reg == nil {
		p.reg = metric.NewRegistry()
		p.reg.MustRegister(metric.NewGoCollector(), metric.NewProcessCollector())
	}
	if p.drainM, err = newDrainMetrics(p.reg); err != nil {
		return nil, err
	}
	pc := proxy.Config{Logger: cfg.Logger, Registerer: p.reg, WriteTimeout: cfg.WriteTimeout, TCPIdleTimeout: cfg.TCPIdleTimeout,
		Service: cfg.Service}
	if cfg.Mode == ModeGateway && pc.Service == "" {
		pc.Service = "gateway" // the source of the gateway's edges
	}
	if pc.AccessLog, err = p.openAccessLog(); err != nil {
		return nil, err
	}
	if pc.Tracer, err = p.newTracer(); err != nil {
		return nil, err
	}
	if cfg.JoinToken != "" {
		ic := sidecaridentity.Config{
			Server: cfg.XDS, Token: cfg.JoinToken, CABundle: cfg.CABundle, StateDir: cfg.StateDir,
			Logger: cfg.Logger, Registerer: p.reg, Instance: cfg.InstanceID,
		}
		if cfg.Mode == ModeSidecar {
			if ic.ID, err = cfg.spiffeID(); err != nil {
				return nil, err
			}
		}
		p.id, err = sidecaridentity.New(ic)
		if err != nil {
			return nil, fmt.Errorf("sidecar: --join-token-file: %w", err)
		}
		p.mtls = newMTLS(p.id, func(direction string, err error) { p.proxy.CountTLSHandshake(direction, err) })
		pc.UpstreamTLS = p.mtls
	}
	p.self = p.instance()
	if p.proxy, err = proxy.New(pc); err != nil {
		return nil, err
	}
	if err := p.bind(); err != nil {
		return nil, err
	}
	if err := p.newXDSClient(); err != nil {
		return nil, err
	}
	// With an identity, gossip starts in Run, once the SVID is in and the
	// control plane has handed out the keyring (gossipkeys.go).
	if p.id == nil {
		if err := p.startGossip(nil); err != nil {
			return nil, err
		}
	}
	p.rebuildTable() // the local app is routable before xDS arrives
	return p, nil
}

func (c *Config) validate() error {
	switch {
	case c.XDS == "":
		return errors.New("sidecar: --xds (the control plane's xDS address) is required")
	case c.Mode == ModeSidecar && !registry.ValidName(c.Service):
		return fmt.Errorf("sidecar: --service %q is not a lowercase DNS label of at most 63 characters", c.Service)
	case c.Mode == ModeSidecar && (c.AppPort < 1 || c.AppPort > 65535):
		return fmt.Errorf("sidecar: --app-port %d is outside 1-65535", c.AppPort)
	case c.RegisterVia != "" && c.RegisterVia != RegisterViaControlPlane && c.RegisterVia != RegisterViaEtcd:
		return fmt.Errorf("sidecar: --register-via %q is not controlplane or etcd", c.RegisterVia)
	case c.Mode == ModeSidecar && c.Register && c.registerVia() == RegisterViaEtcd && len(c.EtcdEndpoints) == 0:
		if c.RegisterVia == RegisterViaEtcd {
			return errors.New("sidecar: --register-via etcd needs --etcd (the etcd endpoints)")
		}
		return errors.New("sidecar: --etcd is required to register the app without an identity (or pass --no-register, or --register-via controlplane)")
	case c.Mode == ModeGateway && c.GatewayListen == "":
		return errors.New("gateway: --listen is required")
	case c.MTLS != "" && c.MTLS != MTLSAuto && c.MTLS != MTLSStrict:
		return fmt.Errorf("sidecar: --mtls %q is not auto or strict", c.MTLS)
	case c.MTLS == MTLSStrict && c.JoinToken == "":
		return errors.New("sidecar: --mtls=strict needs an identity (--join-token-file or $SHOAL_JOIN_TOKEN)")
	}
	return nil
}

// registerVia resolves RegisterVia's zero value: through the control
// plane with an identity, else etcd (the quick start, unchanged).
func (c *Config) registerVia() string {
	switch {
	case c.RegisterVia != "":
		return c.RegisterVia
	case c.JoinToken != "":
		return RegisterViaControlPlane
	}
	return RegisterViaEtcd
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.AppAddress == "" {
		c.AppAddress = "127.0.0.1"
	}
	if c.AppProtocol == "" {
		c.AppProtocol = string(registry.ProtocolHTTP)
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.DrainDelay == 0 {
		c.DrainDelay = time.Second
	}
	if c.GossipLabel == "" {
		c.GossipLabel = "shoal"
	}
	if c.InstanceID == "" && c.Mode == ModeSidecar {
		host, _ := os.Hostname()
		c.InstanceID = fmt.Sprintf("%s-%s-%d", c.Service, host, c.AppPort)
	}
}

// instance is what the sidecar registers: the app, reached through the
// inbound listener when there is one.
func (p *Proxy) instance() registry.Instance {
	c := p.cfg
	in := registry.Instance{
		ID: c.InstanceID, Service: c.Service, Address: c.AppAddress, Port: c.AppPort,
		Protocol: registry.Protocol(c.AppProtocol), Zone: c.Zone, Weight: c.Weight, Metadata: c.Metadata,
	}
	if c.Listen != "" && p.mtls != nil {
		in.TLS = registry.TLSMutual
	}
	if c.Listen != "" {
		if host, port, err := net.SplitHostPort(c.Listen); err == nil {
			if n, err := strconv.Atoi(port); err == nil && n > 0 {
				in.Port = n
				if host != "" && host != "0.0.0.0" && host != "::" {
					in.Address = host
				}
			}
		}
	}
	return in
}

// bind opens every listener.
func (p *Proxy) bind() error {
	c := p.cfg
	add := func(name, addr string, mode proxy.Mode) error {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("sidecar: %s listener %s: %w", name, addr, err)
		}
		if mode.Kind == proxy.Inbound && p.mtls != nil {
			l = p.mtls.listener(l)
		}
		p.listeners = append(p.listeners, served{name: name, l: l, mode: mode})
		return nil
	}
	if c.Mode == ModeGateway {
		if err := add("gateway", c.GatewayListen, proxy.Mode{Kind: proxy.Gateway, XFFTrustedHops: c.TrustedHops}); err != nil {
			return err
		}
	} else {
		if c.Listen != "" {
			if err := add("inbound", c.Listen, proxy.Mode{Kind: proxy.Inbound, Cluster: xdstable.LocalAppCluster}); err != nil {
				return err
			}
		}
		if c.Outbound != "" {
			if err := add("outbound", c.Outbound, proxy.Mode{Kind: proxy.Outbound}); err != nil {
				return err
			}
		}
	}
	for _, name := range sortedKeys(c.Upstreams) {
		if err := add("upstream "+name, c.Upstreams[name], proxy.Mode{Kind: proxy.Fixed, Cluster: name}); err != nil {
			return err
		}
	}
	if c.AdminListen != "" {
		l, err := net.Listen("tcp", c.AdminListen)
		if err != nil {
			return fmt.Errorf("sidecar: admin listener %s: %w", c.AdminListen, err)
		}
		var h http.Handler
		p.adminLis, h = p.guardAdmin(l, p.adminMux())
		p.admin = &http.Server{Handler: h, ConnContext: adminauth.ConnContext, ReadHeaderTimeout: 5 * time.Second}
	}
	return nil
}

// Addrs returns the bound listener addresses by name ("inbound",
// "outbound", "gateway", "upstream NAME", "admin").
func (p *Proxy) Addrs() map[string]string {
	out := map[string]string{}
	for _, s := range p.listeners {
		out[s.name] = s.l.Addr().String()
	}
	if p.adminLis != nil {
		out["admin"] = p.adminLis.Addr().String()
	}
	return out
}

// release closes what New acquired; safe to call more than once.
func (p *Proxy) release() {
	p.closeOnce.Do(func() {
		p.trim.stop()
		for _, s := range p.listeners {
			s.l.Close()
		}
		if p.adminLis != nil {
			p.adminLis.Close()
		}
		if p.member != nil {
			p.member.Close()
		}
		if p.lrsConn != nil {
			p.lrsConn.Close()
		}
		if p.accessFile != nil {
			p.accessFile.Close()
		}
		if p.otlpConn != nil {
			p.otlpConn.Close()
		}
	})
}

// rebuildTable builds a routing table from the last snapshot and the
// gossip view and installs it. Called from New and from the rebuild loop.
func (p *Proxy) rebuildTable() {
	opts := xdstable.Options{Loads: p.proxy.Loads(), RouteConfig: "outbound", Gossip: p.gossipVerdict, ServerID: p.upstreamServerID, NoStallDetection: p.cfg.NoStallDetection}
	if p.cfg.Mode == ModeGateway {
		opts.RouteConfig = "gateway"
	} else {
		opts.Service = p.cfg.Service
		opts.LocalApp = &route.Endpoint{Address: net.JoinHostPort(p.cfg.AppAddress, strconv.Itoa(p.cfg.AppPort)), Healthy: true}
		switch registry.Protocol(p.cfg.AppProtocol) {
		case registry.ProtocolHTTP2, registry.ProtocolGRPC:
			opts.LocalAppProtocol = route.HTTP2
		case registry.ProtocolTCP:
			// The inbound listener passes the bytes through (after the
			// mTLS handshake and the authorization policy, if any).
			opts.LocalAppProtocol = route.TCP
		}
	}
	snap := p.snap.Load()
	opts.Known = p.rememberServices(snap)
	t, err := xdstable.Build(snap, opts)
	if err != nil {
		msg := err.Error()
		p.buildErr.Store(&msg)
		p.log.Warn("routing table built with errors", "err", err)
	} else {
		p.buildErr.Store(nil)
	}
	if t != nil {
		p.proxy.SetTable(t)
		p.tables.notify()
	}
}

// rememberServices adds snap's services to those seen since start and
// returns them all, sorted.
func (p *Proxy) rememberServices(snap *xdsclient.Snapshot) []string {
	p.knownMu.Lock()
	defer p.knownMu.Unlock()
	if p.known == nil {
		p.known = map[string]struct{}{}
	}
	for _, svc := range xdstable.ServiceNames(snap) {
		p.known[svc] = struct{}{}
	}
	return slices.Sorted(maps.Keys(p.known))
}

// gossipVerdict is this proxy's gossip view of an instance for the routing
// table. An instance gossip has never seen stays routable on etcd's word.
func (p *Proxy) gossipVerdict(service, id string) xdstable.Verdict {
	if p.member == nil {
		return xdstable.VerdictUnknown
	}
	st, known := p.member.Health(gossip.InstanceKey{Service: service, ID: id})
	switch {
	case !known:
		return xdstable.VerdictUnknown
	case st == gossip.StatusHealthy:
		return xdstable.VerdictRoutable
	case st == gossip.StatusSuspect:
		return xdstable.VerdictSuspect
	}
	return xdstable.VerdictOut
}

// requestRebuild asks the rebuild loop for a new table; it never blocks.
func (p *Proxy) requestRebuild() {
	select {
	case p.rebuild <- struct{}{}:
	default:
	}
}

// upstreamServerID is the identity an endpoint of service must present:
// for endpoints the control plane marks as mTLS the SAN its cluster
// requires (else the service's ID in our namespace), and with
// --mtls=strict the service's ID for every endpoint (a plain upstream then
// fails to connect). Without an identity of our own, marked endpoints
// still get a server ID, so that connecting to them fails with a reason
// instead of sending plain HTTP the listener would refuse.
func (p *Proxy) upstreamServerID(service string, marked bool, san string) string {
	switch {
	case marked && san != "":
		return san
	case p.mtls == nil || p.id.ID().IsZero():
		if marked {
			return "spiffe://unknown/svc/" + service
		}
		return ""
	case marked || p.cfg.MTLS == MTLSStrict:
		return p.mtls.serverID(service)
	}
	return ""
}

// spiffeID is the identity a sidecar asks for.
func (c *Config) spiffeID() (string, error) {
	tdName := c.TrustDomain
	if tdName == "" {
		tdName = identity.DefaultTrustDomain
	}
	td, err := spiffeid.TrustDomainFromString(tdName)
	if err != nil {
		return "", fmt.Errorf("sidecar: --trust-domain %q: %w", tdName, err)
	}
	if c.Namespace != "" && !registry.ValidName(c.Namespace) {
		return "", fmt.Errorf("sidecar: --namespace %q is not a lowercase DNS label of at most 63 characters", c.Namespace)
	}
	id, err := identity.ServiceID(td, c.Namespace, c.Service)
	if err != nil {
		return "", fmt.Errorf("sidecar: identity: %w", err)
	}
	return id.String(), nil
}

// openAccessLog opens the access log's destination (Config.AccessLog).
func (p *Proxy) openAccessLog() (*accesslog.Logger, error) {
	c := p.cfg
	if c.AccessLog == "" {
		return nil, nil
	}
	format, ok := accesslog.ParseFormat(c.AccessLogFormat)
	if !ok {
		return nil, fmt.Errorf("sidecar: --access-log-format %q: want text or json", c.AccessLogFormat)
	}
	var w io.Writer
	switch c.AccessLog {
	case "stdout":
		w = os.Stdout
	case "stderr":
		w = os.Stderr
	default:
		f, err := os.OpenFile(c.AccessLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("sidecar: --access-log: %w", err)
		}
		p.accessFile, w = f, f
	}
	p.accessLog = accesslog.New(accesslog.Config{W: w, Format: format})
	return p.accessLog, nil
}

// newTracer sets up span export to Config.OTLPEndpoint; nil without one.
func (p *Proxy) newTracer() (*tracing.Tracer, error) {
	c := p.cfg
	if c.OTLPEndpoint == "" {
		return nil, nil
	}
	var err error
	p.otlpConn, err = grpc.NewClient(c.OTLPEndpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("sidecar: --otlp-endpoint %q: %w", c.OTLPEndpoint, err)
	}
	name := c.Service + "-sidecar"
	if c.Mode == ModeGateway {
		name = "gateway"
	}
	p.tracer, err = tracing.New(tracing.Config{Conn: p.otlpConn, Service: name, SampleRate: c.TraceSampleRate, Logger: c.Logger})
	if err != nil {
		return nil, fmt.Errorf("sidecar: --trace-sample-rate: %w", err)
	}
	return p.tracer, nil
}
