package main

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/shoal-mesh/shoal/sidecar"
	"github.com/shoal-mesh/shoal/sidecar/proxy"
)

func TestProxyFlagsSetConnectionTimeouts(t *testing.T) {
	// apply leaves the test binary's GC settings alone when GOGC is set
	// and --memory-limit is 0.
	t.Setenv("GOGC", "100")
	tests := []struct {
		name                   string
		args                   []string
		wantWrite, wantTCPIdle time.Duration
	}{
		{"defaults", nil, proxy.DefaultWriteTimeout, proxy.DefaultTCPIdleTimeout},
		{"set", []string{"--write-timeout", "5s", "--tcp-idle-timeout=10m"}, 5 * time.Second, 10 * time.Minute},
		{"disabled", []string{"--write-timeout=-1s", "--tcp-idle-timeout=-1s"}, -time.Second, -time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f proxyFlags
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			f.register(fs, "")
			if err := fs.Parse(append([]string{"--memory-limit", "0"}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			var cfg sidecar.Config
			if err := f.apply(&cfg, io.Discard); err != nil {
				t.Fatal(err)
			}
			if cfg.WriteTimeout != tc.wantWrite || cfg.TCPIdleTimeout != tc.wantTCPIdle {
				t.Errorf("WriteTimeout, TCPIdleTimeout = %v, %v; want %v, %v", cfg.WriteTimeout, cfg.TCPIdleTimeout, tc.wantWrite, tc.wantTCPIdle)
			}
		})
	}
}
