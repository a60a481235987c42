package controlplane_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-mesh/shoal/controlplane"
	"github.com/shoal-mesh/shoal/controlplane/identity"
	shoalidentity "github.com/shoal-mesh/shoal/identity"
	registryv1 "github.com/shoal-mesh/shoal/proto/shoal/registry/v1"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// regFixture is a control plane with API and xDS authentication on (on
// loopback) and certificates of its CA.
type regFixture struct {
	t     *testing.T
	srv   *controlplane.Server
	ca    *identity.CA
	td    spiffeid.TrustDomain
	roots *x509.CertPool
}

func startRegFixture(t *testing.T) *regFixture {
	dataDir := filepath.Join(t.TempDir(), "data")
	srv, _ := start(t, func(c *controlplane.Config) {
		c.DataDir = dataDir
		c.APIAuth, c.XDSAuth = controlplane.APIAuthRequired, controlplane.APIAuthRequired
	})
	waitReady(t, srv.Addrs().Admin)
	td := spiffeid.RequireTrustDomainFromString(shoalidentity.DefaultTrustDomain)
	ca, err := identity.Load(filepath.Join(dataDir, "ca"), td)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root())
	return &regFixture{t: t, srv: srv, ca: ca, td: td, roots: roots}
}

// svid returns a client certificate for service's workload identity.
func (f *regFixture) svid(service string) *tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id, _ := shoalidentity.ServiceID(f.td, "default", service)
	chain, err := f.ca.SignSVID(id, &key.PublicKey, time.Hour, time.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	return &tls.Certificate{PrivateKey: key, Certificate: [][]byte{chain[0].Raw, chain[1].Raw}}
}

func (f *regFixture) admin() *tls.Certificate {
	dir := f.t.TempDir()
	if _, err := f.ca.WriteAdmin(dir, time.Hour, time.Now()); err != nil {
		f.t.Fatal(err)
	}
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		f.t.Fatal(err)
	}
	return &c
}

func (f *regFixture) tlsConfig(cert *tls.Certificate) *tls.Config {
	cfg := &tls.Config{RootCAs: f.roots, MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

func (f *regFixture) client(addr string, cert *tls.Certificate, tok string) registryv1.RegistryServiceClient {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(f.tlsConfig(cert)))}
	if tok != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds(tok)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { conn.Close() })
	return registryv1.NewRegistryServiceClient(conn)
}

// rev is etcd's current revision.
func (f *regFixture) rev(ctx context.Context) int64 {
	r, err := f.srv.Client().Get(ctx, "/shoal/v1/instances/", clientv3.WithCountOnly())
	if err != nil {
		f.t.Fatal(err)
	}
	return r.Header.Revision
}

func (f *regFixture) instanceKeys(ctx context.Context) []string {
	r, err := f.srv.Client().Get(ctx, "/shoal/v1/instances/", clientv3.WithPrefix())
	if err != nil {
		f.t.Fatal(err)
	}
	var keys []string
	for _, kv := range r.Kvs {
		keys = append(keys, string(kv.Key))
	}
	return keys
}

func regReq(service, id string, port uint32) *registryv1.RegisterRequest {
	return &registryv1.RegisterRequest{
		Instance: &registryv1.Instance{Id: id, Service: service, Address: "127.0.0.1", Port: port, Tls: "mtls"},
		Ttl:      durationpb.New(5 * time.Second),
	}
}

// A workload SVID registers, renews and deregisters instances of its own
// service through the xDS port and the API port, and nothing of another
// service: PermissionDenied, with etcd's revision unchanged.
func TestRegisterThroughControlPlane(t *testing.T) {
	f := startRegFixture(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	a := f.srv.Addrs()
	web := f.client(a.XDS, f.svid("web"), "")

	resp, err := web.Register(ctx, regReq("web", "web-1", 8443))
	if err != nil {
		t.Fatalf("web registers web-1 through the xDS port: %v", err)
	}
	if resp.GetLeaseId() == 0 || resp.GetTtl().AsDuration() != 5*time.Second {
		t.Fatalf("Register = %v, want a lease with a 5s TTL", resp)
	}
	got, err := f.srv.Client().Get(ctx, "/shoal/v1/instances/web/web-1")
	if err != nil || len(got.Kvs) != 1 || got.Kvs[0].Lease != resp.GetLeaseId() {
		t.Fatalf("etcd key after Register: %v, %v; want one key on lease %x", got, err, resp.GetLeaseId())
	}
	var stored map[string]any
	json.Unmarshal(got.Kvs[0].Value, &stored)
	if stored["tls"] != "mtls" || stored["protocol"] != "http" || stored["weight"] != 1.0 || stored["zone"] != "local" {
		t.Fatalf("stored instance %s: want the contract JSON with defaults and tls mtls", got.Kvs[0].Value)
	}
	if _, err := web.KeepAlive(ctx, &registryv1.KeepAliveRequest{LeaseId: resp.LeaseId, Service: "web", InstanceId: "web-1"}); err != nil {
		t.Fatalf("KeepAlive: %v", err)
	}

	// orders, registered by the admin on the API port.
	ordersResp, err := f.client(a.API, f.admin(), "").Register(ctx, regReq("orders", "orders-1", 9443))
	if err != nil {
		t.Fatalf("the admin registers orders-1 on the API port: %v", err)
	}

	refused := func(why string, call func() error) {
		t.Helper()
		before := f.rev(ctx)
		err := call()
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s = %v, want PermissionDenied", why, err)
		}
		if after := f.rev(ctx); after != before {
			t.Fatalf("%s: etcd revision %d -> %d after a refused write", why, before, after)
		}
	}
	refused("web registering orders (xDS port)", func() error { _, err := web.Register(ctx, regReq("orders", "orders-evil", 6666)); return err })
	webAPI := f.client(a.API, f.svid("web"), "")
	refused("web registering orders (API port)", func() error { _, err := webAPI.Register(ctx, regReq("orders", "orders-evil", 6666)); return err })
	refused("web renewing orders' lease", func() error {
		_, err := web.KeepAlive(ctx, &registryv1.KeepAliveRequest{LeaseId: ordersResp.LeaseId, Service: "orders", InstanceId: "orders-1"})
		return err
	})
	refused("web renewing orders' lease under its own name", func() error {
		_, err := web.KeepAlive(ctx, &registryv1.KeepAliveRequest{LeaseId: ordersResp.LeaseId, Service: "web", InstanceId: "orders-1"})
		return err
	})
	refused("web deregistering orders", func() error {
		_, err := web.Deregister(ctx, &registryv1.DeregisterRequest{LeaseId: ordersResp.LeaseId, Service: "orders", InstanceId: "orders-1"})
		return err
	})
	refused("web deregistering orders' lease under its own name", func() error {
		_, err := web.Deregister(ctx, &registryv1.DeregisterRequest{LeaseId: ordersResp.LeaseId, Service: "web", InstanceId: "web-1"})
		return err
	})
	viewer, err := shoalv1.NewTokenServiceClient(mustConn(t, a.API, f.tlsConfig(f.admin()))).CreateToken(ctx, &shoalv1.CreateTokenRequest{Role: "viewer"})
	if err != nil {
		t.Fatal(err)
	}
	refused("a viewer token registering", func() error {
		_, err := f.client(a.API, nil, viewer.Token).Register(ctx, regReq("web", "web-9", 6666))
		return err
	})
	before := f.rev(ctx)
	if _, err := f.client(a.API, nil, "").Register(ctx, regReq("web", "web-9", 6666)); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("anonymous Register = %v, want Unauthenticated", err)
	}
	if after := f.rev(ctx); after != before {
		t.Fatalf("anonymous Register: etcd revision %d -> %d", before, after)
	}
	if want := []string{"/shoal/v1/instances/orders/orders-1", "/shoal/v1/instances/web/web-1"}; strings.Join(f.instanceKeys(ctx), " ") != strings.Join(want, " ") {
		t.Fatalf("instance keys %v, want %v", f.instanceKeys(ctx), want)
	}

	// Deregister deletes the key at once; a gone lease's KeepAlive is
	// NotFound (register again), its Deregister succeeds.
	if _, err := web.Deregister(ctx, &registryv1.DeregisterRequest{LeaseId: resp.LeaseId, Service: "web", InstanceId: "web-1"}); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	if want := []string{"/shoal/v1/instances/orders/orders-1"}; strings.Join(f.instanceKeys(ctx), " ") != strings.Join(want, " ") {
		t.Fatalf("instance keys after Deregister %v, want %v", f.instanceKeys(ctx), want)
	}
	if _, err := web.KeepAlive(ctx, &registryv1.KeepAliveRequest{LeaseId: resp.LeaseId, Service: "web", InstanceId: "web-1"}); status.Code(err) != codes.NotFound {
		t.Fatalf("KeepAlive after Deregister = %v, want NotFound", err)
	}
	if _, err := web.Deregister(ctx, &registryv1.DeregisterRequest{LeaseId: resp.LeaseId, Service: "web", InstanceId: "web-1"}); err != nil {
		t.Fatalf("second Deregister: %v", err)
	}

	// A key deleted behind the registration's back: KeepAlive says
	// NotFound so the holder registers again.
	r2, err := web.Register(ctx, regReq("web", "web-2", 8444))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.srv.Client().Delete(ctx, "/shoal/v1/instances/web/web-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := web.KeepAlive(ctx, &registryv1.KeepAliveRequest{LeaseId: r2.LeaseId, Service: "web", InstanceId: "web-2"}); status.Code(err) != codes.NotFound {
		t.Fatalf("KeepAlive of a deleted key = %v, want NotFound", err)
	}

	// Bad input names the field and writes nothing.
	before = f.rev(ctx)
	bad := regReq("web", "web-3", 70000)
	if _, err := web.Register(ctx, bad); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "instance.port") {
		t.Fatalf("Register with port 70000 = %v, want InvalidArgument naming instance.port", err)
	}
	bad = regReq("web", "web-3", 8000)
	bad.Ttl = durationpb.New(time.Hour)
	if _, err := web.Register(ctx, bad); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "ttl") {
		t.Fatalf("Register with a 1h TTL = %v, want InvalidArgument naming ttl", err)
	}
	if after := f.rev(ctx); after != before {
		t.Fatalf("invalid Register: etcd revision %d -> %d", before, after)
	}
}

func mustConn(t *testing.T, addr string, cfg *tls.Config) *grpc.ClientConn {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// The API port answers RegistryService as JSON over HTTPS/1.1 (the
// Node.js package's way) next to gRPC: a client certificate or a bearer
// token (API token or the service's join token) identifies the caller, as
// over gRPC.
func TestRegisterJSONOverHTTPS(t *testing.T) {
	f := startRegFixture(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	a := f.srv.Addrs()
	post := func(cert *tls.Certificate, tok, method, body string) (int, map[string]any) {
		t.Helper()
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: f.tlsConfig(cert)}}
		defer hc.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(ctx, "POST", "https://"+a.API+"/shoal.registry.v1.RegistryService/"+method, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", method, err)
		}
		defer resp.Body.Close()
		if resp.ProtoMajor != 1 {
			t.Fatalf("POST %s went over HTTP/%d, want HTTP/1.1", method, resp.ProtoMajor)
		}
		b, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("POST %s: %d %q is not JSON", method, resp.StatusCode, b)
		}
		return resp.StatusCode, out
	}
	web := f.svid("web")
	code, out := post(web, "", "Register", `{"instance":{"id":"web-1","service":"web","address":"127.0.0.1","port":3001},"ttl":"5s"}`)
	if code != 200 || out["lease_id"] == nil || out["ttl"] != "5s" {
		t.Fatalf("Register = %d %v, want 200 with lease_id and ttl 5s", code, out)
	}
	lease := out["lease_id"].(string) // int64 as a string: beyond JavaScript's exact integers
	keep := `{"lease_id":"` + lease + `","service":"web","instance_id":"web-1"}`
	if code, out := post(web, "", "KeepAlive", keep); code != 200 || out["ttl"] != "5s" {
		t.Fatalf("KeepAlive = %d %v", code, out)
	}

	before := f.rev(ctx)
	code, out = post(web, "", "Register", `{"instance":{"id":"orders-1","service":"orders","address":"127.0.0.1","port":3002}}`)
	if code != 403 || out["code"] != "permission_denied" || !strings.Contains(out["message"].(string), `"orders"`) {
		t.Fatalf("web registering orders = %d %v, want 403 permission_denied naming orders", code, out)
	}
	if code, out := post(nil, "", "Register", `{"instance":{"id":"web-2","service":"web","address":"127.0.0.1","port":3002}}`); code != 401 || out["code"] != "unauthenticated" {
		t.Fatalf("anonymous Register = %d %v, want 401 unauthenticated", code, out)
	}
	if code, out := post(web, "", "Register", `{"instance":{"id":"web-2","service":"web","address":"127.0.0.1","port":3002,"colour":"red"}}`); code != 400 || out["code"] != "invalid_argument" {
		t.Fatalf("Register with an unknown field = %d %v, want 400 invalid_argument", code, out)
	}
	if after := f.rev(ctx); after != before {
		t.Fatalf("refused JSON writes: etcd revision %d -> %d", before, after)
	}

	// A join token for orders registers orders (without spending a use),
	// not web.
	tokens := shoalv1.NewTokenServiceClient(mustConn(t, a.API, f.tlsConfig(f.admin())))
	jt, err := tokens.CreateToken(ctx, &shoalv1.CreateTokenRequest{Service: "orders", Uses: 1})
	if err != nil {
		t.Fatal(err)
	}
	if code, out := post(nil, jt.Token, "Register", `{"instance":{"id":"orders-1","service":"orders","address":"127.0.0.1","port":3002}}`); code != 200 {
		t.Fatalf("orders' join token registering orders = %d %v, want 200", code, out)
	}
	if code, out := post(nil, jt.Token, "Register", `{"instance":{"id":"web-3","service":"web","address":"127.0.0.1","port":3003}}`); code != 403 {
		t.Fatalf("orders' join token registering web = %d %v, want 403", code, out)
	}

	if code, out := post(web, "", "Deregister", keep); code != 200 {
		t.Fatalf("Deregister = %d %v", code, out)
	}
	if want := []string{"/shoal/v1/instances/orders/orders-1"}; strings.Join(f.instanceKeys(ctx), " ") != strings.Join(want, " ") {
		t.Fatalf("instance keys %v, want %v", f.instanceKeys(ctx), want)
	}
	// gRPC still works on the same port.
	if _, err := shoalv1.NewRegistryServiceClient(mustConn(t, a.API, f.tlsConfig(web))).ListServices(ctx, &shoalv1.ListServicesRequest{}); err != nil {
		t.Fatalf("gRPC ListServices on the API port: %v", err)
	}
}

// Without authentication (the quick start's loopback control plane) the
// API port takes the registration JSON in plain HTTP/1.1 from anyone, as
// its plain etcd would, next to plain gRPC.
func TestRegisterJSONPlainOnLoopback(t *testing.T) {
	srv, _ := start(t)
	waitReady(t, srv.Addrs().Admin)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	a := srv.Addrs()
	body := `{"instance":{"id":"web-1","service":"web","address":"127.0.0.1","port":3001}}`
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+a.API+"/shoal.registry.v1.RegistryService/Register", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"lease_id"`) {
		t.Fatalf("plain Register = %d %s, want 200 with a lease", resp.StatusCode, b)
	}
	if r, err := srv.Client().Get(ctx, "/shoal/v1/instances/web/web-1"); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("etcd after plain Register: %v, %v", r, err)
	}
	conn, err := grpc.NewClient(a.API, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := shoalv1.NewRouteServiceClient(conn).ListRoutes(ctx, &shoalv1.ListRoutesRequest{}); err != nil {
		t.Fatalf("plain gRPC on the same port: %v", err)
	}
}
