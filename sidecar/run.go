package sidecar

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/shoal-mesh/shoal/identity"
	"github.com/shoal-mesh/shoal/internal/etcdlite"
	identityv1 "github.com/shoal-mesh/shoal/proto/shoal/identity/v1"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/registry/gossip"
	"github.com/shoal-mesh/shoal/sidecar/healthcheck"
	"github.com/shoal-mesh/shoal/sidecar/internal/cpreg"
	"github.com/shoal-mesh/shoal/sidecar/lrsclient"
	"github.com/shoal-mesh/shoal/sidecar/proxy"
	"github.com/shoal-mesh/shoal/sidecar/xdsclient"
	"github.com/shoal-mesh/shoal/sidecar/xdstable"
)

// Version is the shoal build, sent to the control plane as the node's
// user_agent_version.
var Version = "dev"

// startGossip joins gossip with keys, a ticket and ticket keys from the
// control plane (from startGossipWithIdentity), or with --gossip-key when
// fromCP is nil.
func (p *Proxy) startGossip(fromCP *identityv1.GetGossipKeysResponse) error {
	c := p.cfg
	if c.GossipListen == "" {
		return nil
	}
	host, port, err := splitHostPort(c.GossipListen)
	if err != nil {
		return fmt.Errorf("sidecar: --gossip-listen: %w", err)
	}
	role := gossip.RoleSidecar
	if c.Mode == ModeGateway {
		role = gossip.RoleGateway
	}
	gc := gossip.DefaultConfig(p.gossipName(), role)
	gc.BindAddr, gc.BindPort, gc.Seeds, gc.Label = host, port, c.GossipJoin, c.GossipLabel
	gc.Logger, gc.Registerer = c.Logger, p.reg
	if fromCP != nil {
		gc.Keys, gc.Ticket = fromCP.GetKeys(), fromCP.GetTicket()
		if gc.TicketKeys, err = ticketKeys(fromCP.GetTicketKeys()); err != nil {
			return err
		}
		if l := fromCP.GetLabel(); l != "" {
			gc.Label = l
		}
	} else if gc.Keys, err = gossip.ParseKeys(c.GossipKey); err != nil {
		return fmt.Errorf("sidecar: --gossip-key: %w", err)
	}
	if c.Mode == ModeSidecar {
		// Not healthy until the first check passes.
		gc.Instances = []gossip.InstanceHealth{{InstanceKey: p.selfKey(), Healthy: false}}
	}
	if p.member, err = gossip.New(gc); err != nil {
		return err
	}
	if len(c.GossipJoin) > 0 {
		if _, err := p.member.Join(c.GossipJoin); err != nil {
			// Rejoin retries the seeds periodically; routing does not need
			// gossip to start.
			p.log.Warn("gossip join failed; will retry", "seeds", c.GossipJoin, "err", err)
		}
	}
	return nil
}

func (p *Proxy) selfKey() gossip.InstanceKey {
	return gossip.InstanceKey{Service: p.cfg.Service, ID: p.cfg.InstanceID}
}

func (p *Proxy) newXDSClient() error {
	c := p.cfg
	info := xdsclient.NodeInfo{ID: c.InstanceID, Cluster: c.Service, Service: c.Service, InstanceID: c.InstanceID, Zone: c.Zone, Version: Version}
	if c.Mode == ModeGateway {
		info.ID, info.Cluster = "gateway-"+p.listeners[0].l.Addr().String(), "gateway"
	}
	mode := xdsclient.ModeDelta
	if c.XDSSotW {
		mode = xdsclient.ModeSotW
	}
	var err error
	p.xds, err = xdsclient.New(xdsclient.Config{
		Server: c.XDS, FallbackServers: c.XDSFallback, Node: xdsclient.NewNode(info), Mode: mode, StateDir: c.StateDir,
		Logger: c.Logger, Registerer: p.reg, Backoff: c.XDSBackoff,
		DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(p.controlPlaneCreds())},
		OnUpdate: func(s *xdsclient.Snapshot) {
			p.snap.Store(s)
			p.rebuildTable()
			p.applied.Store(true)
			p.trim.request()
		},
	})
	if err != nil {
		return err
	}
	return p.newLoadReporter(xdsclient.NewNode(info))
}

// newLoadReporter sets up load reporting (LRS) to the control plane the
// xDS stream starts with: per cluster and endpoint request counts every
// few seconds, from which the control plane draws the mesh's edges.
func (p *Proxy) newLoadReporter(node *xdsclient.Node) error {
	var err error
	p.lrsConn, err = grpc.NewClient(p.cfg.XDS, grpc.WithTransportCredentials(p.controlPlaneCreds()))
	if err != nil {
		return fmt.Errorf("sidecar: --xds %q: %w", p.cfg.XDS, err)
	}
	p.lrs, err = lrsclient.New(lrsclient.Config{Conn: p.lrsConn, Node: node, Take: p.takeLoad, Logger: p.cfg.Logger})
	return err
}

// takeLoad is the proxy's load without the hop to the local app, which is
// no edge between services.
func (p *Proxy) takeLoad() []lrsclient.ClusterLoad {
	loads := p.proxy.TakeLoad()
	return slices.DeleteFunc(loads, func(l lrsclient.ClusterLoad) bool { return l.Cluster == xdstable.LocalAppCluster })
}

// Run serves until ctx is done, then drains: it announces the app is
// leaving (gossip unhealthy, etcd registration revoked), keeps serving for
// DrainDelay so peers stop sending, then stops accepting, lets in-flight
// requests finish within DrainTimeout, closes keep-alive connections and
// leaves gossip. It returns nil after a clean drain.
func (p *Proxy) Run(ctx context.Context) error {
	defer p.release()
	if err := p.startIdentity(ctx); err != nil {
		return err
	}
	if p.id != nil {
		if err := p.startGossipWithIdentity(ctx); err != nil {
			return err
		}
	}
	bg, cancelBG := context.WithCancel(context.Background())
	defer cancelBG()
	var wg sync.WaitGroup
	// errc carries the result of the first goroutine to return; Run reads
	// at most one, so later results are dropped rather than block their
	// goroutine (and wg.Wait) forever.
	errc := make(chan error, 1)
	goRun := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := f()
			select {
			case errc <- err:
			default:
			}
		}()
	}
	for _, s := range p.listeners {
		goRun(func() error { return ignoreClosed(p.proxy.Serve(s.l, s.mode)) })
	}
	if p.admin != nil {
		goRun(func() error { return ignoreClosed(p.admin.Serve(p.adminLis)) })
	}
	goRun(func() error { return p.xds.Run(bg) })
	if p.member != nil && !p.gossipTicketExp.IsZero() {
		goRun(func() error { return p.followGossipKeys(bg) })
	}
	if p.id != nil {
		goRun(func() error { return p.id.Run(bg) })
	}
	goRun(func() error { return p.lrs.Run(bg) })
	if p.tracer != nil {
		goRun(func() error { p.tracer.Run(bg); return nil })
	}
	if p.accessLog != nil {
		// Returns (after writing what is left) once bg is cancelled, after
		// the drain.
		goRun(func() error { p.accessLog.Run(bg); return nil })
	}
	goRun(func() error { return p.rebuildLoop(bg) })
	reg, err := p.startHealthAndRegistration(bg, goRun)
	if err != nil {
		cancelBG()
		p.proxy.Close()
		wg.Wait()
		return err
	}
	p.log.Info("serving", "addrs", p.Addrs(), "xds", append([]string{p.cfg.XDS}, p.cfg.XDSFallback...))
	select {
	case <-ctx.Done():
	case err = <-errc:
		if err != nil {
			p.log.Error("stopping", "err", err)
		}
	}
	p.drain(reg)
	cancelBG()
	if p.admin != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		p.admin.Shutdown(sctx)
		cancel()
	}
	wg.Wait()
	return err
}

func ignoreClosed(err error) error {
	if err == nil || errors.Is(err, http.ErrServerClosed) || errors.Is(err, proxy.ErrClosed) {
		return nil
	}
	return err
}

// startHealthAndRegistration starts the local health check (publishing to
// gossip) and registers the app in etcd.
func (p *Proxy) startHealthAndRegistration(ctx context.Context, goRun func(func() error)) (registration, error) {
	c := p.cfg
	if c.Mode != ModeSidecar {
		return nil, nil
	}
	// The check targets the app itself, not the inbound listener.
	hc, err := healthcheck.New(healthcheck.Config{
		Address: appAddr(c), Path: c.HealthPath, Interval: c.HealthInterval, OnChange: p.onLocalHealth,
	})
	if err != nil {
		return nil, err
	}
	goRun(func() error { hc.Run(ctx); return nil })
	if !c.Register {
		return nil, nil
	}
	if c.registerVia() == RegisterViaControlPlane {
		return p.registerThroughControlPlane(ctx)
	}
	// etcdlite, not clientv3: the sidecar binary must not link clientv3 (its
	// package initialisation alone costs megabytes, issue #7).
	cli, err := etcdlite.New(etcdlite.Config{Endpoints: c.EtcdEndpoints})
	if err != nil {
		return nil, fmt.Errorf("sidecar: --etcd: %w", err)
	}
	goRun(func() error { <-ctx.Done(); cli.Close(); return nil })
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	reg, err := registry.Register(rctx, cli, p.self, registry.RegisterOptions{TTL: c.TTL, Logger: c.Logger.With("component", "registry")})
	if err != nil {
		return nil, fmt.Errorf("sidecar: %w", err)
	}
	p.log.Info("registered", "instance", p.self.Service+"/"+p.self.ID, "address", p.self.HostPort(), "via", RegisterViaEtcd)
	return reg, nil
}

// registration is a running registration: Close deregisters.
type registration interface{ Close() error }

// registerThroughControlPlane registers the app with the control plane's
// RegistryService over the xDS addresses, with the sidecar's SVID.
func (p *Proxy) registerThroughControlPlane(ctx context.Context) (registration, error) {
	c := p.cfg
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	reg, err := cpreg.Register(rctx, cpreg.Config{
		Servers:     append([]string{c.XDS}, c.XDSFallback...),
		DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(p.controlPlaneCreds())},
		Instance:    p.self, TTL: c.TTL, Logger: c.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("sidecar: %w", err)
	}
	p.log.Info("registered", "instance", p.self.Service+"/"+p.self.ID, "address", p.self.HostPort(), "via", RegisterViaControlPlane, "server", reg.Server())
	return reg, nil
}

// onLocalHealth publishes the local app's health through gossip at once.
func (p *Proxy) onLocalHealth(healthy bool, reason string) {
	p.log.Info("local app health changed", "healthy", healthy, "reason", reason)
	if p.member != nil {
		if err := p.member.SetLocalHealth(p.selfKey(), healthy); err != nil {
			p.log.Warn("publishing health failed", "err", err)
		}
	}
}

// drain announces the departure and drains the proxy.
func (p *Proxy) drain(reg registration) {
	start := time.Now()
	if p.member != nil && p.cfg.Mode == ModeSidecar {
		p.member.SetLocalHealth(p.selfKey(), false)
	}
	gated := false
	if reg != nil {
		if err := reg.Close(); err != nil {
			p.log.Warn("deregistration failed; the lease will lapse", "err", err)
		} else {
			gated = p.waitDeregistered()
		}
	}
	if !gated && (p.member != nil || reg != nil) {
		time.Sleep(p.cfg.DrainDelay) // let peers take us out of rotation
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DrainTimeout)
	defer cancel()
	if err := p.proxy.Shutdown(ctx); err != nil {
		p.log.Warn("drain timed out; closed remaining connections", "err", err)
	}
	if p.member != nil {
		p.member.Leave(time.Second)
	}
	p.log.Info("drained", "took", time.Since(start).Round(time.Millisecond))
}

// rebuildLoop rebuilds the table whenever gossip changes the view.
func (p *Proxy) rebuildLoop(ctx context.Context) error {
	if p.member != nil {
		cancel := p.member.Subscribe(func(gossip.Event) { p.requestRebuild() })
		defer cancel()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.rebuild:
			p.rebuildTable()
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func appAddr(c Config) string { return net.JoinHostPort(c.AppAddress, strconv.Itoa(c.AppPort)) }

func splitHostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return host, n, nil
}

// startIdentity gets the first SVID (from the state dir, or for the join
// token) before anything is served: the inbound listener needs it, and a
// token for another service must stop the sidecar rather than let it
// serve under a wrong name.
func (p *Proxy) startIdentity(ctx context.Context) error {
	if p.id == nil {
		return nil
	}
	if err := p.id.Start(ctx); err != nil {
		return fmt.Errorf("sidecar: identity: %w", err)
	}
	id := p.id.ID()
	if p.cfg.Mode == ModeSidecar {
		if _, svc, err := identity.ParseServiceID(id); err != nil || svc != p.cfg.Service {
			return fmt.Errorf("sidecar: the join token is for %s, not for --service %s", id, p.cfg.Service)
		}
	}
	p.log.Info("identity ready", "id", id.String(), "expires", p.id.Expiry(), "mtls", p.mtlsMode())
	p.rebuildTable() // upstream server IDs need our trust domain
	return nil
}

func (p *Proxy) mtlsMode() string {
	if p.cfg.MTLS == "" {
		return MTLSAuto
	}
	return p.cfg.MTLS
}
