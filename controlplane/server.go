package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/shoal-mesh/shoal/controlplane/api"
	"github.com/shoal-mesh/shoal/controlplane/identity"
	"github.com/shoal-mesh/shoal/controlplane/internal/portmux"
	"github.com/shoal-mesh/shoal/controlplane/lrs"
	"github.com/shoal-mesh/shoal/controlplane/ui"
	"github.com/shoal-mesh/shoal/controlplane/xds"
	"github.com/shoal-mesh/shoal/controlplane/xdsserver"
	"github.com/shoal-mesh/shoal/internal/adminauth"
	"github.com/shoal-mesh/shoal/internal/etcdclient"
	"github.com/shoal-mesh/shoal/internal/etcdserver"
	"github.com/shoal-mesh/shoal/internal/metric"
	registryv1 "github.com/shoal-mesh/shoal/proto/shoal/registry/v1"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/registry"
	"github.com/shoal-mesh/shoal/registry/etcdstore"
	"github.com/shoal-mesh/shoal/registry/gossip"
	"github.com/shoal-mesh/shoal/registry/gossip/keyadmin"
)

// Server is a running control plane. Create it with New, run it with Run.
type Server struct {
	cfg Config
	log *slog.Logger

	etcd   *etcdserver.Server // nil with external etcd
	client *clientv3.Client

	reg *metric.Registry

	xdsLis, apiLis, adminLis net.Listener
	xdsGRPC, apiGRPC         *grpc.Server
	health                   *health.Server
	admin                    *http.Server
	// apiMux splits the API port between apiGRPC and apiHTTP, which serves
	// RegistryService's JSON for clients without gRPC.
	apiMux  *portmux.Mux
	apiHTTP *http.Server

	// state joins the registry and routes and tells xDS about changes.
	state *meshState
	api   *api.Server
	// ca is the mesh CA; identity the IdentityService over it.
	ca       *identity.CA
	identity *identity.Service
	xds      *xdsserver.Server
	// lrs receives the proxies' load reports (golden metrics per edge).
	lrs *lrs.Server
	// member is this control plane's gossip membership; nil without gossip.
	member       *gossip.Member
	cancelGossip func()
	// gossipMetrics exports the member's metrics on reg; nil without gossip.
	gossipMetrics *metric.Registry

	closeOnce sync.Once
}

// New starts etcd (embedded unless Config.EtcdEndpoints is set), connects
// to it and binds every listener, so that when New returns the addresses
// are known. Serving starts in Run. On error everything started is stopped.
func New(cfg Config) (_ *Server, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	if err := cfg.checkSecurity(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "controlplane")}
	for _, door := range cfg.openDoors() {
		s.log.Warn("open door (--insecure): " + door)
	}
	defer func() {
		if err != nil {
			s.closeAll()
		}
	}()
	if s.ca, err = s.loadCA(); err != nil {
		return nil, err
	}
	if err := s.startEtcd(); err != nil {
		return nil, err
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	s.setupMetrics()
	if err := s.setupServices(); err != nil {
		return nil, err
	}
	if err := s.startGossip(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) startEtcd() error {
	endpoints := s.cfg.EtcdEndpoints
	clientTLS, err := s.cfg.externalEtcdTLS()
	if err != nil {
		return err
	}
	if len(endpoints) == 0 {
		clientURL, peerURL, err := etcdURLs(s.cfg.EtcdListen, s.cfg.EtcdPeerListen)
		if err != nil {
			return err
		}
		dir := s.cfg.DataDir
		if dir == "" {
			dir = "shoal-data"
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("controlplane: data dir: %w", err)
		}
		ec := etcdserver.Config{Dir: filepath.Join(dir, "etcd"), ClientURL: clientURL, PeerURL: peerURL, Logger: s.log}
		if s.cfg.etcdTLSOn() {
			t, err := s.ca.WriteEtcdTLS(filepath.Join(dir, "etcd-tls"), listenIPs(s.cfg.EtcdListen, s.cfg.EtcdPeerListen), time.Now())
			if err != nil {
				return fmt.Errorf("controlplane: etcd TLS: %w", err)
			}
			ec.TLS = &etcdserver.TLSFiles{CertFile: t.CertFile, KeyFile: t.KeyFile, TrustedCAFile: t.TrustedCAFile, AllowedCNs: identity.EtcdCommonNames}
			ec.ClientURL, ec.PeerURL = "https"+strings.TrimPrefix(clientURL, "http"), "https"+strings.TrimPrefix(peerURL, "http")
			clientTLS = t.Client
			s.log.Info("embedded etcd serves TLS and requires client certificates of the mesh CA", "client_url", ec.ClientURL)
		}
		s.etcd, err = etcdserver.Start(ec)
		if err != nil {
			return err
		}
		endpoints = []string{ec.ClientURL}
	}
	cli, err := etcdclient.NewAuth(endpoints, clientTLS, s.cfg.EtcdUsername, s.cfg.EtcdPassword)
	if err != nil {
		return err
	}
	s.client = cli
	return nil
}

// etcdURLs derives the embedded etcd's client and peer URLs; the peer port
// defaults to the client port + 1.
func etcdURLs(listen, peer string) (clientURL, peerURL string, err error) {
	if listen == "" {
		listen = "127.0.0.1:2379"
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", "", fmt.Errorf("controlplane: --etcd-listen %q: %w", listen, err)
	}
	if peer == "" {
		p, err := strconv.Atoi(port)
		if err != nil || p <= 0 || p >= 65535 {
			return "", "", fmt.Errorf("controlplane: --etcd-listen %q: needs a fixed port below 65535", listen)
		}
		peer = net.JoinHostPort(host, strconv.Itoa(p+1))
	}
	return "http://" + listen, "http://" + peer, nil
}

func (s *Server) listen() error {
	var err error
	for _, l := range []struct {
		addr string
		dst  *net.Listener
		flag string
	}{
		{s.cfg.XDSListen, &s.xdsLis, "--xds-listen"},
		{s.cfg.APIListen, &s.apiLis, "--api-listen"},
		{s.cfg.AdminListen, &s.adminLis, "--admin-listen"},
	} {
		if *l.dst, err = net.Listen("tcp", l.addr); err != nil {
			return fmt.Errorf("controlplane: %s: %w", l.flag, err)
		}
	}
	return nil
}

func (s *Server) setupMetrics() {
	s.reg = s.cfg.Registry
	if s.reg == nil {
		s.reg = metric.NewRegistry()
		s.reg.MustRegister(metric.NewGoCollector(), metric.NewProcessCollector())
	}
}

// Addrs are the bound listen addresses.
type Addrs struct {
	XDS, API, Admin string
	// Gossip is the gossip bind address (empty without gossip).
	Gossip string
	// Etcd is the etcd client endpoint in use (the embedded one's URL, or
	// the first external endpoint).
	Etcd string
}

// Addrs returns the addresses the server listens on.
func (s *Server) Addrs() Addrs {
	a := Addrs{
		XDS: s.xdsLis.Addr().String(), API: s.apiLis.Addr().String(), Admin: s.adminLis.Addr().String(),
		Etcd: s.client.Endpoints()[0],
	}
	if s.member != nil {
		a.Gossip = s.member.Addr()
	}
	return a
}

// Client returns the etcd client the server uses. It is closed by Run's
// shutdown and must not be closed by the caller.
func (s *Server) Client() *clientv3.Client { return s.client }

// Run serves until ctx is done, then shuts down in order: stop accepting
// API and xDS calls (GracefulStop under ShutdownTimeout, then Stop), stop
// the watches, close the etcd client, stop embedded etcd. It returns nil on
// a clean shutdown, or the error that stopped it.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	serve := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- fmt.Errorf("controlplane: %s: %w", name, err)
			}
		}()
	}
	serve("xds", func() error { return s.xdsGRPC.Serve(s.xdsLis) })
	serve("api", func() error { return s.apiGRPC.Serve(s.apiMux.GRPC()) })
	serve("api-http", func() error { return s.apiHTTP.Serve(s.apiMux.HTTP()) })
	serve("api-mux", s.apiMux.Serve)
	serve("admin", func() error { return s.admin.Serve(s.adminLis) })
	serve("state", func() error { return s.state.run(ctx) })
	serve("xds-translate", func() error { return s.xds.Run(ctx) })
	s.log.Info("control plane serving", "xds", s.xdsLis.Addr(), "api", s.apiLis.Addr(),
		"admin", s.adminLis.Addr(), "etcd", s.client.Endpoints())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		s.log.Error("control plane failed", "err", err)
	case err = <-s.etcdErr():
		err = fmt.Errorf("controlplane: embedded etcd: %w", err)
	}
	cancel()
	s.shutdown()
	wg.Wait()
	s.closeAll()
	return err
}

func (s *Server) etcdErr() <-chan error {
	if s.etcd == nil {
		return nil
	}
	return s.etcd.Err()
}

func (s *Server) shutdown() {
	s.health.Shutdown()
	// End the API's watch streams and the xDS streams so GracefulStop need
	// not wait for long-lived streams.
	s.api.Close()
	s.xds.Close()
	var wg sync.WaitGroup
	for _, g := range []*grpc.Server{s.xdsGRPC, s.apiGRPC} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			go func() { g.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-time.After(s.cfg.ShutdownTimeout):
				g.Stop()
				<-done
			}
		}()
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	s.admin.Shutdown(sctx)
	s.apiHTTP.Shutdown(sctx)
	wg.Wait()
	s.apiMux.Close()
}

// closeAll releases what New acquired; safe to call more than once.
func (s *Server) closeAll() {
	s.closeOnce.Do(func() {
		for _, l := range []net.Listener{s.xdsLis, s.apiLis, s.adminLis} {
			if l != nil {
				l.Close()
			}
		}
		if s.member != nil {
			if s.cancelGossip != nil {
				s.cancelGossip()
			}
			s.member.Leave(time.Second)
			s.member.Close()
		}
		if s.gossipMetrics != nil {
			s.reg.Unregister(s.gossipMetrics)
		}
		if s.client != nil {
			s.client.Close()
		}
		if s.etcd != nil {
			s.etcd.Close()
		}
	})
}

func (s *Server) setupServices() error {
	s.health = health.NewServer()
	s.state = newMeshState(s.client, s.log)
	var err error
	s.xds, err = xdsserver.New(xdsserver.Config{Logger: s.cfg.Logger, Registerer: s.reg})
	if err != nil {
		return err
	}
	s.state.onChange = func(eps []registry.Endpoint, rts []*shoalv1.Route, pols []*shoalv1.AuthorizationPolicy) {
		s.xds.Update(xds.Input{Endpoints: eps, Routes: rts, Policies: pols, TrustDomain: s.cfg.TrustDomain})
	}
	// Computed when scraped, not on every registry change.
	dups := metric.NewGaugeFunc(metric.GaugeOpts{
		Name: "shoal_controlplane_duplicate_registrations",
		Help: "Addresses (host:port) registered by more than one instance of a service; the control plane serves one of each (shoal status lists them).",
	}, func() float64 { return float64(len(xds.DuplicateRegistrations(s.state.Endpoints()))) })
	if err := s.reg.Register(dups); err != nil {
		return fmt.Errorf("controlplane: register metrics: %w", err)
	}
	s.lrs, err = lrs.New(lrs.Config{Registerer: s.reg, Logger: s.cfg.Logger})
	if err != nil {
		return err
	}
	s.api, err = api.New(api.Config{
		Routes:    s.state.routes,
		Policies:  s.state.policies,
		Instances: s.state,
		Status:    statusSource{s},
		Traffic:   trafficSource{lrs: s.lrs, instances: s.state.Endpoints},
		Drain:     drainSource{s.xds},
		Logger:    s.cfg.Logger,
	})
	if err != nil {
		return err
	}
	if s.identity, err = s.newIdentity(); err != nil {
		return err
	}
	registrar := etcdstore.NewRegistrar(s.client)
	var apiOpts []grpc.ServerOption
	var authz *api.Authorizer
	if s.cfg.apiAuthOn() {
		ac := api.AuthConfig{
			TrustDomain: s.identity.TrustDomain(),
			TokenRole: func(ctx context.Context, tok string) (string, error) {
				role, err := s.identity.APITokenRole(ctx, tok)
				if errors.Is(err, identity.ErrTokenUnknown) {
					return "", api.ErrUnknownToken
				}
				return role, err
			},
			JoinTokenID: func(ctx context.Context, tok string) (spiffeid.ID, error) {
				id, err := s.identity.JoinTokenID(ctx, tok)
				if errors.Is(err, identity.ErrTokenUnknown) {
					return id, api.ErrUnknownToken
				}
				return id, err
			},
			Logger: s.cfg.Logger,
		}
		apiOpts, authz = api.AuthOptions(ac), api.NewAuthorizer(ac)
		s.apiMux = portmux.New(s.apiLis, s.identity.APITLSConfig(), s.log)
		s.log.Info("management API authenticates: TLS with the mesh CA's serving certificate, admin or workload SVIDs, or bearer tokens", "api", s.apiLis.Addr())
	} else {
		s.apiMux = portmux.New(s.apiLis, nil, s.log)
	}
	s.apiGRPC = api.NewGRPCServer(s.health, append(apiOpts, grpc.Creds(s.apiMux.Creds()))...)
	s.api.Register(s.apiGRPC)
	s.identity.RegisterAdmin(s.apiGRPC)
	apiReg, err := api.NewRegistration(api.RegistrationConfig{
		Registrar: registrar, TrustDomain: s.identity.TrustDomain(), RequireIdentity: s.cfg.apiAuthOn(), Logger: s.cfg.Logger,
	})
	if err != nil {
		return err
	}
	registryv1.RegisterRegistryServiceServer(s.apiGRPC, apiReg)
	s.apiHTTP = &http.Server{Handler: api.JSONHandler(apiReg, authz), ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	opts := append(api.ServerOptions(), xdsserver.ServerOptions()...)
	if s.cfg.xdsAuthOn() {
		authOpts, err := xdsserver.AuthOptions(xdsserver.AuthConfig{TrustDomain: s.identity.TrustDomain(), Registerer: s.reg, Logger: s.cfg.Logger})
		if err != nil {
			return err
		}
		opts = append(opts, authOpts...)
		s.log.Info("xDS port binds streams to identities: TLS with a workload SVID, nodes only of their own service", "xds", s.xdsLis.Addr())
	}
	s.xdsGRPC = grpc.NewServer(append(opts, grpc.Creds(s.identity.Creds()))...)
	s.xds.Register(s.xdsGRPC)
	s.identity.Register(s.xdsGRPC)
	var keys identity.GossipKeys
	if s.cfg.gossipAuthOn() {
		keys = s.gossipKeys
	}
	gs, err := identity.NewGossipService(s.ca, keys, s.cfg.Logger)
	if err != nil {
		return err
	}
	gs.Register(s.xdsGRPC)
	s.lrs.Register(s.xdsGRPC)
	xdsReg, err := api.NewRegistration(api.RegistrationConfig{
		Registrar: registrar, TrustDomain: s.identity.TrustDomain(), RequireIdentity: s.cfg.xdsAuthOn(), Logger: s.cfg.Logger,
	})
	if err != nil {
		return err
	}
	registryv1.RegisterRegistryServiceServer(s.xdsGRPC, xdsReg)
	api.RegisterDrain(s.xdsGRPC, drainSource{s.xds})
	healthpb.RegisterHealthServer(s.xdsGRPC, s.health)
	mux := http.NewServeMux()
	mux.Handle("/metrics", s.reg)
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		if !s.state.ready() || !s.xds.Ready() {
			http.Error(w, "not ready: first read of etcd not done", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("POST /drain/wait", drainWaitHandler(s.xds))
	if s.cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	// The dashboard reads the management API in-process, past its
	// authentication: beyond loopback the admin guard serves it only to
	// loopback peers and the admin identity.
	mux.Handle("/ui/", ui.Handler(s.api.Local(), s.cfg.Logger))
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	// Key rotation for operators (shoal gossip keys); gossip starts after
	// this mux is built, hence the lookup per request.
	mux.Handle(keyadmin.Path, keyadmin.Handler(func() keyadmin.Keyring {
		if s.member == nil {
			return nil
		}
		return persistedKeyring{Member: s.member, s: s}
	}, s.log))
	s.admin = &http.Server{Handler: mux, ConnContext: adminauth.ConnContext, ReadHeaderTimeout: 5 * time.Second}
	if !isLoopback(s.cfg.AdminListen) {
		s.admin.Handler = adminauth.Handler(mux, s.authorizeAdmin)
		s.adminLis = adminauth.Listener(s.adminLis, s.identity.ServerTLSConfig())
		s.log.Info("admin port beyond loopback: /metrics, /ready and /healthz open; the rest needs the admin SVID or an admin token over TLS (or a loopback peer)", "admin", s.adminLis.Addr())
	}
	return nil
}

// drainSource serves DrainService from the xDS server's ACK tracking.
type drainSource struct{ x *xdsserver.Server }

func (d drainSource) WaitRemoved(ctx context.Context, service, address string, port uint32, timeout time.Duration) (bool, time.Duration, []string, int) {
	r := d.x.WaitRemoved(ctx, service, address, port, timeout)
	return r.Converged, r.Waited, r.Pending, r.Clients
}

// statusSource fills MeshService.Status from the server's parts.
type statusSource struct{ s *Server }

func (ss statusSource) Status() *shoalv1.StatusResponse {
	s := ss.s
	return &shoalv1.StatusResponse{
		ControlPlaneVersion: Version,
		ControlPlaneId:      s.id(),
		Ready:               s.state.ready() && s.xds.Ready(),
		Clients:             s.xds.Status(),
		Routes:              s.state.routeStatuses(s.xds.RouteStatuses()),
		Members:             s.members(),
		Duplicates:          xds.DuplicateRegistrations(s.state.Endpoints()),
		Identities:          s.identity.Identities(),
		OpenDoors:           s.cfg.openDoors(),
	}
}

func (s *Server) id() string {
	if s.cfg.ID != "" {
		return s.cfg.ID
	}
	host, _ := os.Hostname()
	return host + ":" + strconv.Itoa(s.xdsLis.Addr().(*net.TCPAddr).Port)
}

// Version is the shoal build, set by the command (main.version).
var Version = "dev"
