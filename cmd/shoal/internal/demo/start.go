package demo

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/shoal-mesh/shoal/controlplane"
	"github.com/shoal-mesh/shoal/internal/freeport"
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

	m.printf("starting %d Node.js instances, each with a sidecar ", m.cfg.Instances)
	for i := 1; i <= m.cfg.Instances; i++ {
		if err := m.startInstance(ctx, i); err != nil {
			return err
		}
		m.printf(".")
	}
	m.printf(" ok\n")
	return m.startGateway(ctx)
}

func (m *mesh) gossipSeed() []string { return []string{m.cp.Addrs().Gossip} }

func (m *mesh) startInstance(ctx context.Context, i int) error {
	id := fmt.Sprintf("web-%d", i)
	appAddr, err := freeport.Addr()
	if err != nil {
		return err
	}
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
	if err := waitHTTP(ctx, "http://"+appAddr+"/healthz"); err != nil {
		return fmt.Errorf("demo: %s not listening: %w", id, err)
	}
	sc, err := sidecar.New(sidecar.Config{
		Mode: sidecar.ModeSidecar, Service: "web", InstanceID: id, AppPort: port,
		Register: true, EtcdEndpoints: []string{m.cp.Addrs().Etcd}, TTL: 10 * time.Second,
		HealthPath: "/healthz", XDS: m.cp.Addrs().XDS, StateDir: filepath.Join(m.dir, id),
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
		Logger: m.log.With("gateway", addrs[0]),
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
