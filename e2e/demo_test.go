package e2e

import (
	"regexp"
	"strings"
	"testing"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// TestDemo runs the README's run command (`shoal demo`) as a new user
// would and checks what it promises: every strategy's table, mTLS between
// the sidecars with the caller's identity reaching the app and a policy
// denying one caller (issue 13), and a failover with zero errors.
func TestDemo(t *testing.T) {
	t.Parallel()
	out, errOut, code := harness.Shoal(t, "demo", "--requests", "1500")
	if code != 0 {
		t.Fatalf("shoal demo exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"round robin", "least connections", "IP hash", "consistent hash", "failover", "demo finished"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{
		"the app saw x-forwarded-client-cert: By=spiffe://shoal.local/ns/default/svc/web;URI=spiffe://shoal.local/ns/default/svc/gateway",
		"batch   → web over mTLS: 200 (no policy yet: default allow)",
		"gateway → web over mTLS: 200 (allowed)",
		"batch   → web over mTLS: 403 Forbidden (denied by web's inbound sidecar: ",
		"spiffe://shoal.local/ns/default/svc/batch may not call GET / on web",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`(\d+) errors out of (\d+) requests`).FindStringSubmatch(out)
	if m == nil || m[1] != "0" {
		t.Errorf("failover errors = %v, want 0:\n%s", m, out)
	}
	if !regexp.MustCompile(`(\d+) of (\d+) users always reached the same instance`).MatchString(out) {
		t.Errorf("no stickiness line for header hash:\n%s", out)
	}
	t.Logf("demo output:\n%s", out)
}
