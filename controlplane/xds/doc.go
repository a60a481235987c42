// Package xds turns the registry (instances with their health) and the
// routes into Envoy v3 xDS resources. Serving them (caches, ADS streams,
// status) is package controlplane/xdsserver, which consumes this one
// through a small interface (xdsserver.Translator); this package imports
// nothing from it.
//
// The translation is a pure function, Translate: the same Input and
// Capabilities always give byte-identical resources, so several control
// planes reading one etcd serve identical resources and identical versions
// (versions are hashes of content, never process-local counters).
//
// Resource names follow the ARCHITECTURE.md contract "xDS resource naming":
//
//	Listeners            outbound, inbound, gateway, <service> (API listener for xds:///<service>),
//	                     and for proxyless clients only grpc/server?xds.resource.listening_address=<ip:port>
//	                     per gRPC mTLS instance (an xDS-enabled gRPC server, gRFC A36)
//	RouteConfigurations  outbound, gateway, <service>
//	Clusters             <service> (round robin), <service>/<strategy> (least_request,
//	                     ring_hash, maglev, random, least_loaded), and for a route destination with a
//	                     subset <service>[k=v,...] and <service>[k=v,...]/<strategy>
//	ClusterLoadAssignments <service>, <service>[k=v,...]
//
// A subset name lists the subset's labels sorted by key, each key and value
// query-escaped (net/url.QueryEscape), joined with ",". Every cluster reads
// its endpoints through eds_cluster_config.service_name, so all strategy
// variants of one service (or subset) share one ClusterLoadAssignment.
//
// Several routes may claim one host. Every host gets one virtual host (in
// outbound and gateway) whose routes are the rules of every accepted route
// claiming it, merged in route-name order, each route's rules in their own
// order; the first rule that matches wins, so a catch-all rule in an
// earlier route hides the later routes' rules for that host. Hosts claimed
// by exactly the same routes share one virtual host, named after the routes
// ("orders-api+users-by-id"); no domain is ever in two virtual hosts (Envoy
// NACKs that). The <service> route configuration of proxyless clients
// takes the merged rules of the routes claiming the bare service name.
// Route entries are named <route>/<rule index>. Two routes with a rule of
// the same host and match cannot both be served: routes.CheckConflicts
// refuses such a write, and if one reaches the translator anyway the later
// route by name is reported not accepted and left out.
//
// mTLS: Envoy and the shoal sidecar get transport_socket_matches with SDS
// secrets default and ROOTCA; proxyless gRPC clients get a cluster
// transport_socket and server listeners naming the certificate provider
// instance CertProviderInstance ("shoal", gRFC A29). See mtls.go and
// grpcserver.go.
//
// What a client can take is decided per client from its node
// (user_agent_name, client_features): see CapabilitiesFor.
//
// Memo is Translate memoized across inputs, for a server that translates
// every change.
package xds
