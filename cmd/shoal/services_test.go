//go:build !shoal_slim

package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/shoal-mesh/shoal/controlplane/api"
	"github.com/shoal-mesh/shoal/controlplane/routes"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
	"github.com/shoal-mesh/shoal/registry"
)

// staticInstances is an api.InstanceSource that never changes.
type staticInstances []registry.Endpoint

func (s staticInstances) Endpoints() []registry.Endpoint { return s }
func (staticInstances) Subscribe(func()) func()          { return func() {} }

// startRegistryAPI serves the management API with eps as the registry.
func startRegistryAPI(t *testing.T, eps []registry.Endpoint) string {
	t.Helper()
	e := etcdtest.Start(t)
	quiet := slog.New(slog.DiscardHandler)
	srv, err := api.New(api.Config{Routes: routes.NewStore(e.Client(t), quiet), Instances: staticInstances(eps), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	gs := api.NewGRPCServer(nil)
	srv.Register(gs)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	t.Cleanup(func() {
		srv.Close()
		gs.Stop()
		if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String()
}

func TestServicesAndInstancesThroughTheAPI(t *testing.T) {
	ep := func(svc, id string, port int, h registry.Health, md map[string]string) registry.Endpoint {
		return registry.Endpoint{Instance: &registry.Instance{ID: id, Service: svc, Address: "127.0.0.1", Port: port, Protocol: "http", Weight: 1, Metadata: md}, Health: h}
	}
	addr := startRegistryAPI(t, []registry.Endpoint{
		ep("orders", "orders-1", 3001, registry.HealthHealthy, map[string]string{"version": "v2"}),
		ep("orders", "orders-sidecar", 3001, registry.HealthHealthy, nil),
		ep("web", "web-1", 3002, registry.HealthUnhealthy, nil),
	})

	stdout, stderr, code := shoal("services", "--api", addr)
	if code != 0 || !strings.Contains(stdout, "orders   2          2") || !strings.Contains(stdout, "web      1          0") {
		t.Errorf("services: exit %d, stderr %q:\n%s", code, stderr, stdout)
	}

	stdout, stderr, code = shoal("instances", "orders", "--api", addr)
	if code != 0 || strings.Count(stdout, "127.0.0.1:3001 (DUPLICATE)") != 2 {
		t.Errorf("instances orders: exit %d; want both rows marked DUPLICATE:\n%s", code, stdout)
	}
	if !strings.Contains(stderr, "warning: 127.0.0.1:3001 is registered 2 times (orders-1, orders-sidecar)") {
		t.Errorf("instances orders: no duplicate warning on stderr: %q", stderr)
	}

	stdout, _, code = shoal("instances", "web", "--api", addr, "-o", "json")
	var resp struct {
		Instances []struct {
			ID     string `json:"id"`
			Health string `json:"health"`
		} `json:"instances"`
	}
	if err := json.Unmarshal([]byte(stdout), &resp); code != 0 || err != nil || len(resp.Instances) != 1 ||
		resp.Instances[0].ID != "web-1" || resp.Instances[0].Health != "HEALTH_STATUS_UNHEALTHY" {
		t.Errorf("instances web -o json: exit %d, %v:\n%s", code, err, stdout)
	}

	_, stderr, code = shoal("instances", "nosuch", "--api", addr)
	if code != 1 || !strings.Contains(stderr, `service "nosuch" has no registered instances`) {
		t.Errorf("instances nosuch: exit %d, stderr %q; want 1 and a message", code, stderr)
	}
	_, stderr, code = shoal("instances", "web", "--etcd", "127.0.0.1:2379", "--api", addr)
	if code != 0 || !strings.Contains(stderr, "deprecated") {
		t.Errorf("instances --etcd: exit %d, stderr %q; want it accepted with a deprecation notice", code, stderr)
	}
}

func TestRoutesGetUnknownNamesTheRoute(t *testing.T) {
	addr := startAPI(t)
	for _, verb := range []string{"get", "delete"} {
		_, stderr, code := shoal("routes", verb, "nosuch", "--api", addr)
		if code != 1 || !strings.Contains(stderr, `route "nosuch" not found`) {
			t.Errorf("routes %s nosuch: exit %d, stderr %q", verb, code, stderr)
		}
	}
}
