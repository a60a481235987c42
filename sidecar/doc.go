// Package sidecar is the shoal proxy process: `shoal sidecar` next to one
// app instance, and `shoal gateway` at the edge. It wires the parts:
//
//   - registration of the app in etcd (package registry), unless the app
//     registers itself;
//
//   - a health check of the local app (package healthcheck) published
//     through gossip (package gossip), and gossip's view of every other
//     instance overlaid on routing at once, without waiting for the
//     control plane;
//
//   - the xDS client (package xdsclient), whose snapshots become routing
//     tables (package xdstable) swapped atomically into the proxy (package
//     proxy), with the last good config kept on disk for static stability;
//
//   - the admin server: /ready, /metrics, /config_dump, /clusters.
//
//     p, err := sidecar.New(cfg)
//     if err != nil { ... }
//     err = p.Run(ctx) // serves until ctx is done, then drains
package sidecar
