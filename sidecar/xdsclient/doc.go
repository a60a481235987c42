// Package xdsclient is the sidecar's xDS client: one ADS stream over gRPC to
// the control plane, delta (incremental) xDS by default with a
// state-of-the-world fallback, delivering consistent snapshots of Envoy
// resources (listeners, route configurations, clusters, endpoint
// assignments) to the sidecar's routing table.
//
// go-control-plane is not linked: requests, responses and resources are
// the protobuf code generated from a trimmed copy of Envoy's protos
// (sidecar/internal/xdspb, written by tools/protosubset from
// tools/protosubset/envoy.keep) holding the fields the sidecar reads; fields
// outside it are discarded while unmarshalling. On the wire the type URLs
// and method names are Envoy's; package sidecar/internal/xdsres maps them
// to the subset. Each resource's bytes are kept as received (state file,
// change detection, /config_dump).
//
// Protocol (https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol):
//   - Subscriptions: LDS (wildcard, or Config.Listeners) and CDS (wildcard),
//     then RDS for the route_config_names the listeners' HTTP connection
//     managers reference and EDS for the service names of EDS clusters. They
//     follow the resources: delta sends resource_names_subscribe and
//     resource_names_unsubscribe, SotW re-sends the request with the new names.
//   - Every resource is decoded and checked against the Envoy protos'
//     validation rules for the decoded fields (listeners' HTTP connection
//     managers too), then by Config.Validate. Malformed wire data is an
//     error like a rule violation. A response with any bad resource is
//     NACKed as a whole, with the reasons in error_detail, and the type keeps
//     its last good resources. SotW ACKs echo version_info and nonce, NACKs
//     keep the previous version_info; delta ACKs and NACKs echo the nonce.
//   - Reconnects use gRPC's connection backoff (1 s × 1.6 ± 20 %, capped at
//     30 s by default) and re-subscribe everything; delta streams send
//     initial_resource_versions for what is held.
//
// Output: Config.OnUpdate receives complete snapshots serially (see
// publish.go for completeness and the settle timeout). Delivery never blocks
// the receive loop: while OnUpdate runs, newer snapshots coalesce and the
// newest wins. After OnUpdate returns, the snapshot is written to
// Config.StateDir; LoadState reads it back, and Run starts from it when the
// control plane is unreachable (static stability).
//
// Example:
//
//	c, err := xdsclient.New(xdsclient.Config{
//		Server:   "127.0.0.1:18000",
//		Node:     xdsclient.NewNode(xdsclient.NodeInfo{ID: "orders-1", Cluster: "orders", Service: "orders"}),
//		StateDir: "/var/lib/shoal",
//		OnUpdate: func(s *xdsclient.Snapshot) { table.Store(build(s)) },
//	})
//	if err != nil {
//		return err
//	}
//	return c.Run(ctx)
package xdsclient
