//go:build !shoal_slim

package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-mesh/shoal/controlplane"
	"github.com/shoal-mesh/shoal/internal/testutil/etcdtest"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

func TestEvaluateStatus(t *testing.T) {
	now := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(-d)) }
	const rds = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	client := func(id string, connected time.Duration, r *shoalv1.ResourceStatus) *shoalv1.XdsClient {
		r.TypeUrl = rds
		return &shoalv1.XdsClient{NodeId: id, ConnectedAt: ago(connected), Resources: []*shoalv1.ResourceStatus{r}}
	}
	tests := []struct {
		name     string
		st       *shoalv1.StatusResponse
		wantFail map[string]string // check name -> text in its lines
	}{
		{"healthy mesh", &shoalv1.StatusResponse{Ready: true,
			Clients: []*shoalv1.XdsClient{client("web-1", time.Hour, &shoalv1.ResourceStatus{SentVersion: "7", AckedVersion: "7", NackedVersion: "5", LastAckTime: ago(time.Hour)})},
			Routes:  []*shoalv1.RouteStatus{{Name: "web", Accepted: true}},
			Members: []*shoalv1.Member{{Name: "cp", State: "alive", Role: "controlplane"}},
		}, nil},
		{"everything wrong", &shoalv1.StatusResponse{
			Clients: []*shoalv1.XdsClient{
				client("stuck-1", time.Hour, &shoalv1.ResourceStatus{SentVersion: "8", AckedVersion: "7", LastAckTime: ago(time.Hour)}),
				client("new-1", time.Second, &shoalv1.ResourceStatus{SentVersion: "8"}),
				client("nack-1", time.Hour, &shoalv1.ResourceStatus{SentVersion: "8", AckedVersion: "7", NackedVersion: "8", NackError: "bad regex"}),
			},
			Routes:     []*shoalv1.RouteStatus{{Name: "web", Accepted: false, Error: "no such service"}},
			Members:    []*shoalv1.Member{{Name: "web-host", State: "suspect", Role: "sidecar"}},
			Duplicates: []*shoalv1.DuplicateRegistration{{Service: "orders", Address: "10.0.0.1:3001", InstanceIds: []string{"a", "b"}, KeptInstanceId: "a"}},
		}, map[string]string{
			"control plane ready":        "",
			"routes served":              `route "web": no such service`,
			"xDS clients ACKed":          "stuck-1 RDS: sent 8, ACKed 7",
			"no NACKs":                   "nack-1 RDS version 8: bad regex",
			"no duplicate registrations": "orders 10.0.0.1:3001: a, b (served: a)",
			"gossip members alive":       "sidecar web-host",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range evaluateStatus(tc.st, 30*time.Second, now) {
				want, shouldFail := tc.wantFail[r.name]
				switch {
				case r.ok == nil:
					if r.name != "clock skew" {
						t.Errorf("%s was not run", r.name)
					}
				case *r.ok == shouldFail:
					t.Errorf("%s: ok = %v, want %v (%s %v)", r.name, *r.ok, !shouldFail, r.detail, r.lines)
				case shouldFail && !strings.Contains(strings.Join(r.lines, "\n"), want):
					t.Errorf("%s: lines %q lack %q", r.name, r.lines, want)
				case shouldFail && r.hint == "":
					t.Errorf("%s failed without a hint", r.name)
				}
				if strings.Contains(strings.Join(r.lines, "\n"), "new-1") {
					t.Errorf("%s reports a client connected a second ago: %v", r.name, r.lines)
				}
			}
		})
	}
}

func TestCheckAgainstARealControlPlane(t *testing.T) {
	cfg := controlplane.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.EtcdListen, cfg.EtcdPeerListen = etcdtest.FreeAddr(t), etcdtest.FreeAddr(t)
	cfg.XDSListen, cfg.APIListen, cfg.AdminListen, cfg.GossipListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := controlplane.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	api := srv.Addrs().API

	var stdout, stderr string
	code := -1
	deadline := time.Now().Add(20 * time.Second)
	for code != 0 && time.Now().Before(deadline) { // until the first read of etcd is done
		stdout, stderr, code = shoal("check", "--api", api)
		if code != 0 {
			time.Sleep(50 * time.Millisecond) // poll interval of a loop with a deadline
		}
	}
	if code != 0 || strings.Contains(stdout, "✖") || !strings.Contains(stdout, "✔ etcd healthy") || !strings.Contains(stdout, "Status check results are ✔") {
		t.Errorf("check: exit %d, stderr %q:\n%s", code, stderr, stdout)
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	var out bytes.Buffer
	if code := run([]string{"check", "--api", dead, "--timeout", "2s"}, &out, &out); code != 1 ||
		!strings.Contains(out.String(), "✖ control plane reachable") || !strings.Contains(out.String(), "hint: ") {
		t.Errorf("check against nothing: exit %d:\n%s", code, out.String())
	}
}
