// Package controlplane is shoal's control plane: it serves etcd (embedded by
// default, or uses an external cluster), follows the instance registry and
// the routes stored there, and serves the management API and xDS.
//
//	srv, err := controlplane.New(controlplane.DefaultConfig())
//	if err != nil { ... }
//	err = srv.Run(ctx) // blocks until ctx is done, then shuts down
package controlplane
