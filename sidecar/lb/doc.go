// Package lb holds the types shared by the sidecar's load balancers: the
// Endpoint, its load counters (Load, LoadStore), the Picker and Builder
// interfaces, PickInfo (request hash key and retry exclusions), Config, the
// panic-threshold helper Eligible, and the request hash functions.
//
// Strategies live in subpackages, one each: roundrobin (smooth weighted,
// nginx), leastrequest (exact scan / weighted power of two choices),
// ringhash (Envoy-compatible ketama ring, optional bounded loads), maglev
// (Envoy-compatible weighted Maglev), random (weighted) and leastloaded
// (weights from the ORCA load reports endpoints put on their responses,
// gRFC A58, with power of two choices on requests in flight; see
// ParseORCA and Endpoint.ReportLoad). builtin maps a
// strategy name (RoundRobin, LeastRequest, ...) to its Builder.
//
// # Model
//
// Pickers follow grpc-go: a Picker is an immutable snapshot built from an
// endpoint set whenever the set, a weight or a health flag changes, and
// published by its owner through an atomic pointer. Pick is lock-free,
// allocation-free and safe for concurrent use. Only the per-address Load
// counters change between rebuilds; they live in a LoadStore so in-flight
// requests are still counted after a rebuild.
//
// Only healthy endpoints are picked, unless fewer than
// Config.PanicThreshold percent are healthy (Envoy panic mode), in which
// case all are. Hash pickers take PickInfo.Hash (HashString of a source IP,
// header or cookie value) and pick at random without one. Retries exclude
// earlier hosts with PickInfo.Exclude.
//
// # Performance
//
// BenchmarkPick, go1.26 linux/amd64, 2 shared cores (-cpu 2), equal
// weights, ns/op serial (parallel), including the caller's Begin/End.
// Every strategy makes 0 allocs/op on the pick path.
//
//	strategy              3 endpoints   100 endpoints   1000 endpoints
//	roundrobin            23 (27)       17 (18)         17 (18)
//	leastrequest          55 (49)       34 (34)         36 (39)
//	ringhash              26 (28)       23 (23)         31 (47)
//	ringhash bounded 1.25 38 (52)       170 (120)       2400 (2600)
//	maglev                17 (18)       16 (18)         21 (23)
//	random                17 (16)       16 (16)         31 (19)
//	leastloaded           76 (78)       81 (86)         85 (94)
//
// Least loaded reads the clock on every pick (to recompute its weights
// once per WeightUpdatePeriod), most of its extra cost.
//
// Bounded loads sum the in-flight counts of all eligible endpoints on each
// pick (O(endpoints)); the other strategies are O(1) or O(log ring size).
//
// A complete use, as the proxy does it, is in Example.
package lb
