package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGossipKeySources(t *testing.T) {
	const k1, k2, k3 = "a2V5LWZyb20tZmxhZy1rZXktZnJvbS1mbGFnLWtleS0x", "a2V5LWZyb20tZmlsZQ==", "a2V5LWZyb20tZW52"
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte(k2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		env     string
		want    string
		wantErr string
	}{
		{"flag", []string{"--gossip-key", k1}, k3, k1, ""},
		{"file, trimmed", []string{"--gossip-key-file", file}, k3, k2, ""},
		{"environment", nil, k3, k3, ""},
		{"none: no encryption", nil, "", "", ""},
		{"flag and file", []string{"--gossip-key", k1, "--gossip-key-file", file}, "", "", "give one"},
		{"missing file", []string{"--gossip-key-file", file + ".nope"}, "", "", "--gossip-key-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(gossipKeyEnv, tc.env)
			var g gossipKeyFlags
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			g.register(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got, err := g.resolve()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("resolve() = %q, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("resolve() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
