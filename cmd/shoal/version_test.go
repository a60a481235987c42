package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildFrom(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/shoal-mesh/shoal", Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "1a3d93b2c4e5f60718293a4b5c6d7e8f90a1b2c3"}, {Key: "vcs.time", Value: "2026-12-07T05:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	tests := []struct {
		name           string
		bi             *debug.BuildInfo
		ver, rev, date string
		want           string
	}{
		{"a git checkout", vcs, "", "", "", "dev (commit 1a3d93b2c4e5-dirty, built 2026-12-07T05:00:00Z, go1.26.8 "},
		{"go install module@version", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.4.0"}}, "", "", "", "v0.4.0 (go1.26.8 "},
		{"-X flags win", vcs, "v0.4.1", "ffffffffffffffff", "2026-12-08T00:00:00Z", "v0.4.1 (commit ffffffffffff, built 2026-12-08T00:00:00Z, go1.26.8 "},
		{"nothing known", nil, "", "", "", "dev ("},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := buildFrom(tc.bi, tc.ver, tc.rev, tc.date).String(); !strings.HasPrefix(got, tc.want) {
				t.Errorf("got %q, want a line starting %q", got, tc.want)
			}
		})
	}
}
