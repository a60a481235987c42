package grpcbootstrap

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMarshal(t *testing.T) {
	dir := t.TempDir()
	got, err := Marshal(Config{Server: "127.0.0.1:18000", Dir: dir, CertFile: "cert.pem", KeyFile: "key.pem", CAFile: "ca.pem",
		Service: "web", RefreshInterval: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]any{
		"certificate_file":    filepath.Join(dir, "cert.pem"),
		"private_key_file":    filepath.Join(dir, "key.pem"),
		"ca_certificate_file": filepath.Join(dir, "ca.pem"),
		"refresh_interval":    "1.5s",
	}
	want := map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      "127.0.0.1:18000",
			"channel_creds":   []any{map[string]any{"type": "tls", "config": files}},
			"server_features": []any{"xds_v3"},
		}},
		"node":                                   map[string]any{"id": "web", "cluster": "web", "locality": map[string]any{"zone": "local"}},
		"certificate_providers":                  map[string]any{"shoal": map[string]any{"plugin_name": "file_watcher", "config": files}},
		"server_listener_resource_name_template": "grpc/server?xds.resource.listening_address=%s",
	}
	var m map[string]any
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("bootstrap (-want +got):\n%s", diff)
	}
}

func TestMarshalNamesTheMissingField(t *testing.T) {
	ok := Config{Server: "127.0.0.1:18000", Dir: "d", CertFile: "c", KeyFile: "k", CAFile: "a", Service: "web"}
	for _, tc := range []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"no server", func(c *Config) { c.Server = "" }, "Config.Server"},
		{"no dir", func(c *Config) { c.Dir = "" }, "Config.Dir"},
		{"no service", func(c *Config) { c.Service = "" }, "Config.Service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			if _, err := Marshal(c); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Marshal() = %v, want an error naming %s", err, tc.wantErr)
			}
		})
	}
}

func TestRefreshFor(t *testing.T) {
	for _, tc := range []struct{ remaining, want time.Duration }{
		{24 * time.Hour, time.Minute},
		{30 * time.Second, 7 * time.Second},
		{5 * time.Second, time.Second},
		{time.Second, time.Second},
		{-time.Second, time.Second},
	} {
		if got := RefreshFor(tc.remaining); got != tc.want {
			t.Errorf("RefreshFor(%v) = %v, want %v", tc.remaining, got, tc.want)
		}
	}
}
