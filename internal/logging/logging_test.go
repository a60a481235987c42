package logging

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestEachKeyOncePerLine(t *testing.T) {
	var b bytes.Buffer
	root := New(&b, slog.LevelInfo)
	// As the control plane hands its tagged logger to the API, which tags
	// it again.
	api := root.With("component", "controlplane").With("component", "api", "node", "n1").With("component", "api")
	api.Info("serving", "addr", "127.0.0.1:1")
	api.Warn("stream failed", "node", "n2", "err", "boom")
	api.WithGroup("g").Info("grouped", "component", "inner")
	root.Debug("hidden")

	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{
		`level=INFO msg=serving component=api node=n1 addr=127.0.0.1:1`,
		`level=WARN msg="stream failed" component=api node=n2 err=boom`,
		`level=INFO msg=grouped component=api node=n1 g.component=inner`,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), b.String())
	}
	for i, l := range lines {
		if _, rest, _ := strings.Cut(l, " "); rest != want[i] { // drop time=
			t.Errorf("line %d = %q, want %q", i, rest, want[i])
		}
	}
}

func TestMapsAndSlicesPrintAsJSON(t *testing.T) {
	var b bytes.Buffer
	New(&b, slog.LevelInfo).Info("x", "metadata", map[string]string{"version": "v2"}, "addrs", []string{"a:1", "b:2"}, "raw", []byte("hi"), "n", 3)
	for _, w := range []string{`metadata="{\"version\":\"v2\"}"`, `addrs="[\"a:1\",\"b:2\"]"`, `raw="hi"`, `n=3`} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("%q lacks %s", b.String(), w)
		}
	}
}
