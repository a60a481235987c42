// Package e2e holds shoal's end-to-end tests: real shoal processes, embedded
// etcd, Node.js services and xDS clients on loopback. See package harness.
package e2e

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(grpcBackendEnv); addr != "" {
		serveGRPCBackend(addr) // this process is a gRPC backend (grpc_test.go)
		return
	}
	if addr := os.Getenv(grpcXDSServerEnv); addr != "" {
		serveGRPCXDSServer(addr) // this process is an xDS-enabled gRPC server (grpcmtls_test.go)
		return
	}
	if target := os.Getenv(grpcXDSClientEnv); target != "" {
		runGRPCXDSClient(target) // this process is a proxyless gRPC client (grpcmtls_test.go)
		return
	}
	goleak.VerifyTestMain(m)
}
