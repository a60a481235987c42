//go:build !shoal_slim

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shoal-mesh/shoal/deploy/inject"
	"github.com/shoal-mesh/shoal/internal/testutil/tlstest"
)

var updateInjectGolden = flag.Bool("update", false, "rewrite testdata/inject/*.golden")

// TestInjectGolden runs `shoal inject -f` over every example manifest and
// compares stdout with testdata/inject/<example>.golden (-update rewrites).
func TestInjectGolden(t *testing.T) {
	files, err := filepath.Glob("../../deploy/kubernetes/examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples (%v)", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run([]string{"inject", "-f", f}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			golden := filepath.Join("testdata", "inject", name+".golden")
			if *updateInjectGolden {
				if err := os.WriteFile(golden, stdout.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), stdout.String()); diff != "" {
				t.Errorf("shoal inject -f %s (-golden +got):\n%s", f, diff)
			}
			if !strings.Contains(stderr.String(), "injected") {
				t.Errorf("stderr %q reports no injected workload", stderr.String())
			}
			// Injecting the output again changes nothing.
			var again bytes.Buffer
			stdin := filepath.Join(t.TempDir(), "once.yaml")
			if err := os.WriteFile(stdin, stdout.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			if code := run([]string{"inject", "-q", "-f", stdin}, &again, io.Discard); code != 0 || again.String() != stdout.String() {
				t.Errorf("second inject: exit %d, output changed: %v", code, again.String() != stdout.String())
			}
		})
	}
}

func TestInjectUsageAndErrors(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"requires -f", []string{"inject"}, 2, "-f FILE or -f - is required"},
		{"reports a missing file", []string{"inject", "-f", "does-not-exist.yaml"}, 1, "does-not-exist.yaml"},
		{"refuses a bad pull policy", []string{"inject", "-f", "-", "--image-pull-policy", "Sometimes"}, 1, "--image-pull-policy"},
		{"webhook requires TLS files", []string{"inject-webhook"}, 2, "--tls-cert and --tls-key are required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(tc.args, io.Discard, &stderr); code != tc.wantCode || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tc.wantCode, tc.wantErr)
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer written by the command's goroutine and
// read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestInjectWebhookServesAdmissionReviewsOverTLS runs `shoal
// inject-webhook` on a loopback port and sends it the AdmissionReview the
// inject package tests with.
func TestInjectWebhookServesAdmissionReviewsOverTLS(t *testing.T) {
	certFile, keyFile, pool := tlstest.SelfSigned(t, t.TempDir(), "shoal-injector")
	ctx, cancel := context.WithCancel(t.Context())
	var stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		cmd := newInjectWebhookCmd()
		cmd.SetArgs([]string{"--listen", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile})
		cmd.SetOut(io.Discard)
		cmd.SetErr(&stderr)
		done <- cmd.ExecuteContext(ctx)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("inject-webhook: %v", err)
		}
	}()

	addrRE := regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`)
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == ""; {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listen address logged: %s", stderr.String())
		}
		select {
		case err := <-done:
			t.Fatalf("inject-webhook exited: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	body, err := os.ReadFile("../../deploy/inject/testdata/admissionreview-pod.json")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Post("https://"+addr+"/mutate", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var review struct {
		Response struct {
			Allowed   bool
			PatchType string
			Patch     []byte
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&review); err != nil {
		t.Fatal(err)
	}
	if !review.Response.Allowed || review.Response.PatchType != "JSONPatch" {
		t.Fatalf("response %+v, want allowed with a JSONPatch", review.Response)
	}
	var req struct {
		Request struct{ Object json.RawMessage }
	}
	json.Unmarshal(body, &req)
	patched, err := inject.ApplyPatch(req.Request.Object, review.Response.Patch)
	if err != nil {
		t.Fatalf("patch does not apply: %v", err)
	}
	if !strings.Contains(string(patched), `"name":"shoal-sidecar"`) {
		t.Errorf("patched pod has no sidecar: %s", patched)
	}
	h, err := client.Get("https://" + addr + "/healthz")
	if err != nil || h.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: %v %v", h, err)
	}
	if h != nil {
		h.Body.Close()
	}
}
