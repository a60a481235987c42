package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

func TestGRPCThroughProxy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("orders", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)

	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "grpc", Protocol: route.HTTP2,
		Endpoints: []route.Endpoint{{Address: l.Addr().String(), Healthy: true}}}, route.Route{}))
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()

	t.Run("unary call with trailers", func(t *testing.T) {
		res, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "orders"})
		if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check = %v, %v; want SERVING", res, err)
		}
	})
	t.Run("error status in trailers", func(t *testing.T) {
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("Check(unknown) = %v, want NotFound", err)
		}
	})
	t.Run("server streaming", func(t *testing.T) {
		sctx, scancel := context.WithCancel(ctx)
		defer scancel()
		stream, err := hc.Watch(sctx, &healthpb.HealthCheckRequest{Service: "orders"})
		if err != nil {
			t.Fatal(err)
		}
		if res, err := stream.Recv(); err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("first update = %v, %v", res, err)
		}
		hs.SetServingStatus("orders", healthpb.HealthCheckResponse_NOT_SERVING)
		if res, err := stream.Recv(); err != nil || res.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("second update = %v, %v", res, err)
		}
		scancel()
		if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
			t.Fatalf("after cancel: %v, want Canceled", err)
		}
	})
}

func TestH2CClientToHTTP1Cluster(t *testing.T) {
	be := startBackend(t, "a", nil)
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(be)}, route.Route{}))
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Get("http://" + addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.ProtoMajor != 2 || res.StatusCode != 200 || string(body) != "a GET /x" {
		t.Errorf("got %s %d %q, want HTTP/2 200 from a", res.Proto, res.StatusCode, body)
	}
}

func TestWebSocketUpgrade(t *testing.T) {
	be := startBackend(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "not an upgrade", 400)
			return
		}
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
		io.Copy(c, brw) // echo
	})
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(be)}, route.Route{}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 101 || res.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("upgrade response = %v, %v", res, err)
	}
	for _, msg := range []string{"hello", "world"} {
		io.WriteString(c, msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
			t.Fatalf("echo = %q, %v; want %q", got, err, msg)
		}
	}
}

func TestTCPCluster(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // echo until EOF, then close
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.Copy(c, c)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := route.New(route.Config{Loads: p.Loads(), Clusters: []route.ClusterConfig{{Name: "redis", Protocol: route.TCP,
		Endpoints: []route.Endpoint{{Address: "127.0.0.1:1", Healthy: true}, {Address: l.Addr().String(), Healthy: true}}}}})
	if err != nil {
		t.Fatal(err)
	}
	p.SetTable(tbl)
	addr := serve(t, p, Mode{Kind: Fixed, Cluster: "redis"})
	for range 2 { // the dead endpoint is skipped by connect retries
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "PING\r\n")
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || !strings.EqualFold(string(got), "PING\r\n") {
			t.Fatalf("echo = %q, %v", got, err)
		}
	}
}
