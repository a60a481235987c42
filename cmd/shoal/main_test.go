//go:build !shoal_slim

package main

import (
	"bytes"
	"strings"
	"testing"
)

// shoal runs the command line args in-process and returns stdout, stderr
// and the exit status.
func shoal(args ...string) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return o.String(), e.String(), code
}

func TestUsageErrorsExitTwoNamingTheProblem(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown command", []string{"nope"}, `unknown command "nope"`},
		{"unknown command close to a known one", []string{"sidecr"}, `did you mean "sidecar"?`},
		{"unknown flag", []string{"sidecar", "--bogus"}, "unknown flag: --bogus"},
		{"unknown subcommand", []string{"gossip", "keys", "rotate"}, `unknown command "rotate"`},
		{"group without a command", []string{"gossip"}, "a command is required"},
		{"extra argument", []string{"version", "x"}, "want no arguments, got 1"},
		{"missing key", []string{"gossip", "keys", "use", "--admin", "127.0.0.1:1"}, "want one KEY argument"},
		{"bad log level", []string{"sidecar", "--service", "web", "--app-port", "1", "--log-level", "loud"}, `--log-level "loud"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := shoal(tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tc.wantErr)
			}
		})
	}
}

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"sidecar", "-h"}, {"gossip", "keys", "--help"}} {
		stdout, stderr, code := shoal(args...)
		if code != 0 || !strings.Contains(stdout, "Usage:") {
			t.Errorf("shoal %v: exit %d, stdout %q, stderr %q; want 0 and usage on stdout", args, code, stdout, stderr)
		}
	}
}

func TestSingleDashLongFlagsStillWork(t *testing.T) {
	// The flag package accepted -name for --name; scripts may still use it.
	_, stderr, code := shoal("sidecar", "-service", "web", "-app-port", "1", "-xds=a:1:2")
	if code != 2 || !strings.Contains(stderr, `--xds "a:1:2"`) {
		t.Errorf("exit %d, stderr %q; want the parsed --xds rejected by validation", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		stdout, stderr, code := shoal(args...)
		if code != 0 || !strings.HasPrefix(stdout, "shoal ") || !strings.Contains(stdout, "go1.") {
			t.Errorf("shoal %v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	stdout, _, code := shoal("version", "-o", "json")
	if code != 0 || !strings.Contains(stdout, `"go_version": "go1.`) {
		t.Errorf("version -o json: exit %d:\n%s", code, stdout)
	}
}

func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_shoal", "zsh": "#compdef shoal", "fish": "complete -c shoal"} {
		stdout, stderr, code := shoal("completion", shell)
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("completion %s: exit %d, stderr %q, stdout lacks %q", shell, code, stderr, want)
		}
	}
}
