package main

import (
	"bytes"
	"flag"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseFlagsAllowsFlagsAfterArguments(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantO    string
		wantArgs []string
	}{
		{"flags first", []string{"-o", "json", "web"}, "json", []string{"web"}},
		{"flags after the argument", []string{"web", "-o", "json"}, "json", []string{"web"}},
		{"double dash keeps the rest", []string{"-o", "json", "--", "-x", "y"}, "json", []string{"-x", "y"}},
		{"no arguments", []string{"-o=yaml"}, "yaml", []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			o := fs.String("o", "table", "")
			if err := parseFlags(fs, tc.args, io.Discard); err != nil {
				t.Fatal(err)
			}
			if *o != tc.wantO {
				t.Errorf("-o = %q, want %q", *o, tc.wantO)
			}
			if diff := cmp.Diff(tc.wantArgs, fs.Args()); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnknownFlagIsAUsageError(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"services", "--bogus"}, io.Discard, &stderr); code != 2 {
		t.Errorf("exit code = %d, want 2 (stderr %q)", code, stderr.String())
	}
	if code := run([]string{"nope"}, io.Discard, &stderr); code != 2 {
		t.Errorf("unknown command exit code = %d, want 2", code)
	}
}
