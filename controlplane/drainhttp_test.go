package controlplane_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	drainv1 "github.com/shoal-mesh/shoal/proto/shoal/drain/v1"
)

// The drain gate is served on the xDS port (gRPC, for sidecars) and on the
// admin port (HTTP/JSON, for an app without a sidecar) (issue 18).
func TestDrainGateOnTheXDSAndAdminPorts(t *testing.T) {
	srv, _ := start(t)
	a := srv.Addrs()
	waitReady(t, a.Admin)

	conn, err := grpc.NewClient(a.XDS, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := drainv1.NewDrainServiceClient(conn).WaitRemoved(t.Context(), &drainv1.WaitRemovedRequest{
		Service: "web", Address: "127.0.0.1", Port: 3001, Timeout: durationpb.New(time.Second)})
	if err != nil || !resp.GetConverged() || resp.GetClients() != 0 {
		t.Fatalf("WaitRemoved on the xDS port = %v, %v; want converged at once (no xDS client has web)", resp, err)
	}

	post := func(body string) (int, string) {
		r, err := http.Post("http://"+a.Admin+"/drain/wait", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	if code, body := post(`{"service":"web","address":"127.0.0.1","port":0}`); code != http.StatusBadRequest || !strings.Contains(body, "port") {
		t.Errorf("port 0: %d %q, want 400 naming port", code, body)
	}
	code, body := post(`{"service":"web","instance_id":"web-1","address":"127.0.0.1","port":3001,"timeout_ms":1000}`)
	var ans struct {
		Converged bool     `json:"converged"`
		Pending   []string `json:"pending"`
		Proxies   int      `json:"proxies"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &ans) != nil || !ans.Converged || ans.Pending == nil || ans.Proxies != 0 {
		t.Errorf("POST /drain/wait = %d %s, want converged, pending [] and 0 proxies", code, body)
	}
}
