//go:build shoal_slim

package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestSlimCommandLine(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOutput string
	}{
		{"version", []string{"version"}, 0, "shoal "},
		{"--version", []string{"--version"}, 0, "go1."},
		{"help", []string{"--help"}, 0, "sidecar"},
		{"no command", nil, 2, "usage: shoal-sidecar"},
		{"full-only command", []string{"controlplane"}, 2, `unknown command "controlplane"`},
		{"unknown flag", []string{"sidecar", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"bad --xds entry", []string{"sidecar", "--service", "web", "--app-port", "1", "--no-register", "--xds", "a:1,b:2:3"}, 2, `--xds "b:2:3"`},
		{"bad gateway listener", []string{"gateway", "--listen", "8080"}, 2, `--listen "8080"`},
		{"positional argument", []string{"gateway", "extra"}, 2, "want no arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(tc.args, &out, &out)
			if code != tc.wantCode || !strings.Contains(out.String(), tc.wantOutput) {
				t.Errorf("exit %d, output %q; want %d and %q", code, out.String(), tc.wantCode, tc.wantOutput)
			}
		})
	}
}
