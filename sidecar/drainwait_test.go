package sidecar_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
	"github.com/shoal-mesh/shoal/sidecar"
)

type drainAnswer struct {
	Converged bool     `json:"converged"`
	WaitedMS  int64    `json:"waited_ms"`
	Pending   []string `json:"pending"`
}

// postDrainWait calls POST /drain/wait and returns the status and answer.
func postDrainWait(t *testing.T, admin, body string) (int, drainAnswer, string) {
	t.Helper()
	resp, err := http.Post("http://"+admin+"/drain/wait", "application/json", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0, drainAnswer{}, ""
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var a drainAnswer
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Errorf("/drain/wait answer %q: %v", raw, err)
		}
	}
	return resp.StatusCode, a, string(raw)
}

// An app that deregistered itself asks its sidecar's admin port to wait
// until the sidecar no longer routes to it (issue 18): the answer comes
// when the EDS update without it is applied, or at the bound.
func TestDrainWaitAnswersWhenTheTableDropsTheInstance(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	cp := startControlPlane(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer app.Close()
	port := appPort(t, app)
	cli := etcdtest.Client(t, cp.Etcd)
	key := "/shoal/v1/instances/web/web-1"
	if _, err := cli.Put(t.Context(), key, fmt.Sprintf(`{"id":"web-1","service":"web","address":"127.0.0.1","port":%d}`, port)); err != nil {
		t.Fatal(err)
	}
	// A second instance stays: the last instance of a service leaving
	// removes the whole assignment, which the control plane keeps serving
	// for a while (make before break), and the gate would wait for that.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer other.Close()
	if _, err := cli.Put(t.Context(), "/shoal/v1/instances/web/web-2", fmt.Sprintf(`{"id":"web-2","service":"web","address":"127.0.0.1","port":%d}`, appPort(t, other))); err != nil {
		t.Fatal(err)
	}
	client, err := sidecar.New(sidecar.Config{
		Service: "client", InstanceID: "client-1", AppPort: 1, XDS: cp.XDS,
		Upstreams: map[string]string{"web": "127.0.0.1:0"}, AdminListen: "127.0.0.1:0", StateDir: t.TempDir(), Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	runSidecar(t, client)
	admin := client.Addrs()["admin"]
	poll(t, "web reachable through the client sidecar", func() bool { return get("http://"+client.Addrs()["upstream web"]+"/") == http.StatusOK })

	for _, tc := range []struct{ body, want string }{
		{`{"service":"web","address":"127.0.0.1","port":0}`, "port 0 is outside 1-65535"},
		{`{"service":"web","port":80}`, "address is required"},
		{`{"address":"127.0.0.1","port":80}`, "service is required"},
		{`{"service":"web","address":"127.0.0.1","port":80,"timeout_ms":-1}`, "timeout_ms -1 is negative"},
		{`not json`, "body:"},
	} {
		if code, _, raw := postDrainWait(t, admin, tc.body); code != http.StatusBadRequest || !strings.Contains(raw, tc.want) {
			t.Errorf("POST /drain/wait %s = %d %q, want 400 naming %q", tc.body, code, raw, tc.want)
		}
	}

	still := fmt.Sprintf(`{"service":"web","instance_id":"web-1","address":"127.0.0.1","port":%d,"timeout_ms":50}`, port)
	if code, a, raw := postDrainWait(t, admin, still); code != http.StatusOK || a.Converged || len(a.Pending) != 1 || a.Pending[0] != "client-1" {
		t.Errorf("while web-1 is registered: %d %s, want not converged, pending [client-1]", code, raw)
	}

	type result struct {
		a    drainAnswer
		code int
	}
	done := make(chan result, 1)
	go func() {
		code, a, _ := postDrainWait(t, admin, strings.Replace(still, `"timeout_ms":50`, `"timeout_ms":30000`, 1))
		done <- result{a, code}
	}()
	deleted := time.Now()
	if _, err := cli.Delete(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.code != http.StatusOK || !r.a.Converged || len(r.a.Pending) != 0 {
		t.Fatalf("after deregistration: %d %+v, want converged", r.code, r.a)
	}
	if since := time.Since(deleted); since >= 30*time.Second {
		t.Errorf("answered after %s: at the bound, not when the table changed", since)
	}
	t.Logf("drain gate answered %d ms after the wait began", r.a.WaitedMS)

	metrics := string(getBody(t, "http://"+admin+"/metrics"))
	for _, want := range []string{"shoal_sidecar_drain_wait_seconds_count 2", "shoal_sidecar_drain_wait_timeouts_total 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func getBody(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}
