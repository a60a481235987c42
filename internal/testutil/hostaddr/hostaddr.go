// Package hostaddr finds an address of the test host beyond loopback, for
// tests of what listeners do for callers that are not on loopback.
package hostaddr

import (
	"net"
	"os"
	"testing"
)

// IPv4 returns a non-loopback IPv4 address of this host: a connection to
// it has a non-loopback peer, as a caller on the pod network would. A host
// without one cannot run the test: it is skipped with the reason, except
// under SHOAL_TEST_STRICT=1 (`make test`, CI), where it fails, so CI never
// passes without having run it.
func IPv4(t testing.TB) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	why := "this host has no non-loopback IPv4 address to call a listener from beyond loopback"
	if err != nil {
		why = "no interface addresses: " + err.Error()
	}
	if os.Getenv("SHOAL_TEST_STRICT") == "1" {
		t.Fatalf("%s (SHOAL_TEST_STRICT=1: not skipped)", why)
	}
	t.Skip(why)
	return ""
}
