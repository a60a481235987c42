// Package browser drives headless Chromium (Debian's chromium package) for
// tests of web pages: the DOM after the page's scripts ran, and a
// screenshot.
package browser

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Render loads url in headless Chromium and returns the DOM after the
// page's scripts ran (up to five seconds of virtual time), and the path of
// a screenshot in a temporary directory. With $SHOAL_SCREENSHOT set the
// screenshot is also copied there.
func Render(t testing.TB, ctx context.Context, url string) (dom, screenshot string) {
	t.Helper()
	bin := Find(t)
	dir := t.TempDir()
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + filepath.Join(dir, "profile"), "--window-size=1400,1100",
		"--virtual-time-budget=5000",
	}
	out, err := exec.CommandContext(ctx, bin, append(args, "--dump-dom", url)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	screenshot = filepath.Join(dir, "page.png")
	if err := exec.CommandContext(ctx, bin, append(args, "--screenshot="+screenshot, url)...).Run(); err != nil {
		t.Fatalf("chromium --screenshot: %v", err)
	}
	b, err := os.ReadFile(screenshot)
	if err != nil || len(b) == 0 {
		t.Fatalf("no screenshot: %v", err)
	}
	if dst := os.Getenv("SHOAL_SCREENSHOT"); dst != "" {
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatalf("$SHOAL_SCREENSHOT: %v", err)
		}
	}
	return string(out), screenshot
}

// Find returns the path of Debian's chromium. `make test` installs it
// (browser-deps) and sets SHOAL_TEST_STRICT=1, under which a missing
// browser fails the test; a bare `go test` elsewhere skips and says how to
// get it.
func Find(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("SHOAL_TEST_STRICT") == "1" {
		t.Fatal("chromium not found: `make browser-deps` installs Debian's chromium package")
	}
	t.Skip("headless Chromium not installed (apt-get install chromium; `make test` installs it or fails): the browser test did not run")
	return ""
}
