// Package lrs serves Envoy's Load Reporting Service
// (envoy.service.load_stats.v3, https://www.envoyproxy.io/docs/envoy/latest/api-v3/service/load_stats/v3/lrs.proto)
// on the control plane's xDS port, and turns the reports into the mesh's
// golden metrics per edge.
//
// A proxy (a shoal sidecar or gateway, or Envoy with a load_stats_config)
// opens one stream, names its node, and is told to report every cluster at
// endpoint granularity every Interval. Each report carries, per cluster and
// endpoint, the requests issued, succeeded and failed since the previous
// report and those in progress now. The source of an edge is the reporting
// node's cluster (a sidecar's service; "gateway" for the gateway), the
// destination is the cluster's EDS service name (clusters are named
// <service> or <service>/<strategy>, see ARCHITECTURE.md), so every
// strategy variant of one service adds up to one edge.
//
// Reports are kept for Window (a minute by default) and answer "how much
// traffic did each instance get, per strategy, over the last minute" for
// the dashboard and `shoal top` (Server.Snapshot), and are added to
// Prometheus counters (shoal_controlplane_edge_requests_total).
//
// Latency: LRS has no latency field. A shoal proxy reports the sum of its
// request latencies as the named load metric MetricLatencyMS
// (EndpointLoadMetricStats: requests finished with it and the total), from
// which the mean per edge is derived; percentiles come from the proxies' own
// histograms (shoal_sidecar_request_duration_seconds).
package lrs
