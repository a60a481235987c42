// Package route is the sidecar's routing table: an immutable value built
// once from plain Go data (what the xDS glue extracts from Listener,
// RouteConfiguration, Cluster and ClusterLoadAssignment resources) and
// swapped atomically by pointer by its readers.
//
// A Table holds virtual hosts selected by domain (exact, "*.suffix",
// "prefix.*", "*"), each with ordered routes (path prefix, exact path or
// regular expression; methods; header matches), route actions (weighted
// clusters, timeouts, retry and hash policies) and clusters with their
// protocol, load-balancing picker (package lb), outlier detection and
// circuit-breaker settings.
//
//	t, err := route.New(route.Config{
//		VirtualHosts: []route.VirtualHost{{
//			Name:    "orders",
//			Domains: []string{"orders", "orders.svc"},
//			Routes: []route.Route{{
//				Match:    route.Match{PathPrefix: "/"},
//				Clusters: []route.WeightedCluster{{Name: "orders", Weight: 1}},
//			}},
//		}},
//		Clusters: []route.ClusterConfig{{
//			Name:      "orders",
//			Endpoints: []route.Endpoint{{Address: "10.0.0.7:3001", Healthy: true}},
//		}},
//	})
//
// Concurrency: New is safe to call concurrently. A *Table and everything
// reachable from it are read-only after New returns and safe for concurrent
// use; Match and the pick helpers do not allocate.
package route
