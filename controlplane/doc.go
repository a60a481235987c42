// Package controlplane is shoal's control plane: it serves etcd (embedded by
// default, or uses an external cluster), follows the instance registry and
// the routes stored there, and serves the management API and xDS.
//
//	srv, err := controlplane.New(controlplane.DefaultConfig())
//	if err != nil { ... }
//	err = srv.Run(ctx) // blocks until ctx is done, then shuts down
//
// How a change in etcd reaches the proxies (each step names its code):
//
//  1. etcd: an instance key under /shoal/v1/instances/ or a route under
//     /shoal/v1/routes/ is written, deleted or expires with its lease.
//  2. watch: meshState.run (state.go) follows both prefixes with
//     registry/etcdstore and controlplane/routes, resuming from the last
//     revision and re-listing after a compaction; applyInstances and
//     applyRoutes fold each batch into the state.
//  3. state: meshState holds every instance, the health gossip reports for
//     it (setHealth, from the memberlist overlay in gossip.go) and every
//     route; nothing etcd cannot rebuild. On each change it calls onChange
//     with the endpoints and routes (Server.setupServices).
//  4. update: xdsserver.Server.Update stores the newest xds.Input and wakes
//     Run; updates arriving within Config.Debounce (bounded by MaxDelay)
//     become one translation.
//  5. translate: Run calls its Translator (xds.Memo, the memoized
//     xds.Translate: a pure function of the input, package controlplane/xds,
//     which imports nothing from the serving side) for every capability
//     profile; resources are checked (xds.Resources.Check) and versioned by
//     content hash, so every control plane computes the same versions.
//  6. cache: the publisher (xdsserver/publish.go) puts the load assignments
//     into the one EDS cache and each profile's listeners, routes and
//     clusters into that profile's caches (xdsserver/profilecaches.go),
//     keeping removed clusters and assignments for RemovalDelay (make
//     before break); a cache records which resources changed.
//  7. push: each open ADS stream (go-control-plane's server over the
//     caches) gets what changed since what it holds — per resource on
//     delta, per type on SotW — and ACKs or NACKs it; the tracker
//     (xdsserver/status.go) records both for `shoal status`.
package controlplane
