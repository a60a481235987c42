package demo

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-mesh/shoal/controlplane"
	"github.com/shoal-mesh/shoal/internal/freeport"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
	"github.com/shoal-mesh/shoal/sidecar"
)

// slowInstance is the instance that answers slowly, to show least
// connections at work (the last one).
const slowDelay = 20 * time.Millisecond

func (m *mesh) start(ctx context.Context) error {
	// etcd must be told its ports (they are in its advertised URLs); the
	// control plane's own listeners bind port 0 and report what they got.
	addrs, err := freeport.Addrs(2)
	if err != nil {
		return err
	}
	m.printf("starting embedded etcd and the control plane ... ")
	cfg := controlplane.DefaultConfig()
	cfg.DataDir = filepath.Join(m.dir, "data")
	cfg.EtcdListen, cfg.EtcdPeerListen = addrs[0], addrs[1]
	cfg.XDSListen, cfg.APIListen, cfg.AdminListen, cfg.GossipListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = m.log
	if m.cp, err = controlplane.New(cfg); err != nil {
		return err
	}
	m.goRun("controlplane", func() error { return m.cp.Run(ctx) })
	if err := waitHTTP(ctx, "http://"+m.cp.Addrs().Admin+"/ready"); err != nil {
		return fmt.Errorf("demo: control plane not ready: %w", err)
	}
	m.printf("ok (etcd %s, xDS %s, API %s)\n", m.cp.Addrs().Etcd, m.cp.Addrs().XDS, m.cp.Addrs().API)
	if err := m.createTokens(ctx); err != nil {
		return err
	}

	m.printf("starting %d Node.js instances, each behind a sidecar with an identity (mTLS only on its inbound port) ", m.cfg.Instances)
	for i := 1; i <= m.cfg.Instances; i++ {
		if err := m.startInstance(ctx, i); err != nil {
			return err
		}
		m.printf(".")
	}
	m.printf(" ok\n")
	if err := m.startGateway(ctx); err != nil {
		return err
	}
	return m.startBatch(ctx)
}

// createTokens makes the join tokens of web's sidecars, the gateway and
// the batch caller: with them each gets an X.509 SVID from the control
// plane's dev CA (created under the data dir on first start).
func (m *mesh) createTokens(ctx context.Context) error {
	conn, err := grpc.NewClient(m.cp.Addrs().API, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	tc := shoalv1.NewTokenServiceClient(conn)
	m.tokens = map[string]string{}
	for svc, uses := range map[string]int{"web": m.cfg.Instances, "gateway": 1, "batch": 1} {
		resp, err := tc.CreateToken(ctx, &shoalv1.CreateTokenRequest{Service: svc, Uses: int32(uses), TtlSeconds: 600})
		if err != nil {
			return fmt.Errorf("demo: join token for %s: %w", svc, err)
		}
		m.tokens[svc] = resp.GetToken()
	}
	return nil
}

func (m *mesh) gossipSeed() []string { return []string{m.cp.Addrs().Gossip} }

func (m *mesh) startInstance(ctx context.Context, i int) error {
	id := fmt.Sprintf("web-%d", i)
	addrs, err := freeport.Addrs(2)
	if err != nil {
		return err
	}
	appAddr, inAddr := addrs[0], addrs[1]
	_, p, _ := net.SplitHostPort(appAddr)
	port, _ := strconv.Atoi(p)
	var delay time.Duration
	if i == m.cfg.Instances && m.cfg.Instances > 1 {
		delay = slowDelay
	}
	app, err := m.startApp(id, port, delay)
	if err != nil {
		return err
	}
	m.apps = append(m.apps, app)
	m.appIDs = append(m.appIDs, id)
	m.appAddrs = append(m.appAddrs, appAddr)
	m.inAddrs = append(m.inAddrs, inAddr)
	if err := waitHTTP(ctx, "http://"+appAddr+"/healthz"); err != nil {
		return fmt.Errorf("demo: %s not listening: %w", id, err)
	}
	sc, err := sidecar.New(sidecar.Config{
		Mode: sidecar.ModeSidecar, Service: "web", InstanceID: id, AppPort: port,
		Register: true, EtcdEndpoints: []string{m.cp.Addrs().Etcd}, TTL: 10 * time.Second,
		HealthPath: "/healthz", XDS: m.cp.Addrs().XDS, StateDir: filepath.Join(m.dir, id),
		Listen: inAddr, JoinToken: m.tokens["web"],
		GossipListen: "127.0.0.1:0", GossipJoin: m.gossipSeed(), Logger: m.log.With("sidecar", id),
		DrainDelay: 100 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	m.goRun("sidecar "+id, func() error { return sc.Run(ctx) })
	return nil
}

func (m *mesh) startGateway(ctx context.Context) error {
	addrs, err := freeport.Addrs(3)
	if err != nil {
		return err
	}
	m.printf("starting the gateway on %s ... ", addrs[0])
	m.gateway, err = sidecar.New(sidecar.Config{
		Mode: sidecar.ModeGateway, GatewayListen: addrs[0], AdminListen: addrs[1],
		XDS: m.cp.Addrs().XDS, GossipListen: addrs[2], GossipJoin: m.gossipSeed(),
		Logger: m.log.With("gateway", addrs[0]), JoinToken: m.tokens["gateway"], StateDir: filepath.Join(m.dir, "gateway"),
	})
	if err != nil {
		return err
	}
	m.gwAddr, m.gwAdmin = addrs[0], addrs[1]
	m.goRun("gateway", func() error { return m.gateway.Run(ctx) })
	if err := waitHTTP(ctx, "http://"+addrs[1]+"/ready"); err != nil {
		return fmt.Errorf("demo: gateway not ready: %w", err)
	}
	m.printf("ok\n")
	return nil
}

// startBatch starts the sidecar of a second caller, batch, with its own
// identity and an --upstream port for web and no app of its own (the demo
// plays its app): the policy the demo applies denies it.
func (m *mesh) startBatch(ctx context.Context) error {
	addrs, err := freeport.Addrs(2)
	if err != nil {
		return err
	}
	_, p, _ := net.SplitHostPort(addrs[1])
	port, _ := strconv.Atoi(p)
	m.printf("starting the sidecar of a second caller, batch, with --upstream web=%s ... ", addrs[0])
	sc, err := sidecar.New(sidecar.Config{
		Mode: sidecar.ModeSidecar, Service: "batch", InstanceID: "batch-1", AppPort: port,
		XDS: m.cp.Addrs().XDS, StateDir: filepath.Join(m.dir, "batch"), Upstreams: map[string]string{"web": addrs[0]},
		GossipListen: "127.0.0.1:0", GossipJoin: m.gossipSeed(), Logger: m.log.With("sidecar", "batch-1"),
		JoinToken: m.tokens["batch"],
	})
	if err != nil {
		return err
	}
	m.batchAddr = addrs[0]
	m.goRun("sidecar batch-1", func() error { return sc.Run(ctx) })
	if err := waitHTTP(ctx, "http://"+m.batchAddr+"/"); err != nil {
		return fmt.Errorf("demo: batch does not reach web: %w", err)
	}
	m.printf("ok\n")
	return nil
}

// waitHTTP polls url until it answers 200, for up to 30s.
func waitHTTP(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
