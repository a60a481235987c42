package harness

import (
	"os"
	"testing"
)

// StrictEnv is the environment variable `make test` (and so CI) sets to 1:
// a test whose prerequisite is missing (Node.js packages, `ip netns`) then
// fails instead of skipping, so nothing CI is meant to run is silently left
// out.
const StrictEnv = "SHOAL_TEST_STRICT"

// Unavailable ends the test when a prerequisite is missing: it fails under
// SHOAL_TEST_STRICT=1 (`make test`) and skips otherwise (a bare `go test`
// on a machine without it). why says what is missing and how to get it.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(StrictEnv) == "1" {
		t.Fatalf("%s (%s=1: `make test` runs this test, so the prerequisite must be there)", why, StrictEnv)
	}
	t.Skip(why + " (skipped; `make test` installs it or fails)")
}
