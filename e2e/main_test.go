// Package e2e holds shoal's end-to-end tests: real shoal processes, embedded
// etcd, Node.js services and xDS clients on loopback. See package harness.
package e2e

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
