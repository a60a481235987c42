// Package xdsserver serves the resources package controlplane/xds
// translates over ADS with go-control-plane, state-of-the-world and delta:
// per-profile resource caches, the EDS cache and its change log, watches,
// the ADS server and its stream callbacks, client status, and returning
// memory after bursts of pushes. It reaches the translation only through
// Translator (as go-control-plane's pkg/server reaches its cache through
// cache.ConfigWatcher).
//
//	srv, err := xdsserver.New(xdsserver.Config{Logger: log, Registerer: reg})
//	if err != nil { ... }
//	srv.Register(grpcServer)      // ADS, SotW and delta
//	go srv.Run(ctx)               // coalesces updates; serves nothing before the first one
//	srv.Update(xds.Input{...})    // after the first full read of etcd, then on every change
package xdsserver
