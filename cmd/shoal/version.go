package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set at build time, e.g. by the Dockerfile:
//
//	go build -ldflags "-X main.version=v0.4.0 -X main.commit=$(git rev-parse HEAD) -X main.buildDate=$(date -u +%FT%TZ)"
//
// Empty values are filled from the module and VCS information the Go
// toolchain stamps into the binary (runtime/debug.ReadBuildInfo): the
// module version for `go install …@v0.4.0`, vcs.revision and vcs.time for
// a build inside a git checkout (unless -buildvcs=false).
var version, commit, buildDate string

// build describes this binary.
type build struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	// Modified is true when the working tree had uncommitted changes.
	Modified bool `json:"modified,omitempty"`
	// BuildDate is -X main.buildDate, else the commit's time (vcs.time).
	BuildDate string `json:"build_date,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// currentBuild returns this binary's build information.
func currentBuild() build {
	bi, _ := debug.ReadBuildInfo()
	return buildFrom(bi, version, commit, buildDate)
}

// buildFrom combines the -X values (which win) with bi (nil when the
// binary carries none).
func buildFrom(bi *debug.BuildInfo, ver, rev, date string) build {
	b := build{Version: ver, Commit: rev, BuildDate: date, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		b.GoVersion = bi.GoVersion
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Commit == "" {
					b.Commit = s.Value
				}
			case "vcs.time":
				if b.BuildDate == "" {
					b.BuildDate = s.Value
				}
			case "vcs.modified":
				b.Modified = s.Value == "true" && rev == ""
			}
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	return b
}

// String is one line: "v0.4.0 (commit 2bb30d4…, built …, go1.26.8 linux/amd64)".
func (b build) String() string {
	parts := []string{}
	if b.Commit != "" {
		c := b.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		if b.Modified {
			c += "-dirty"
		}
		parts = append(parts, "commit "+c)
	}
	if b.BuildDate != "" {
		parts = append(parts, "built "+b.BuildDate)
	}
	parts = append(parts, b.GoVersion+" "+b.Platform)
	return fmt.Sprintf("%s (%s)", b.Version, strings.Join(parts, ", "))
}
