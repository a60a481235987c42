// Package proxy is the sidecar and gateway data path: HTTP/1.1 (an
// allocation-free fast path with its own strict parser and keep-alive
// upstream pools), h2c and gRPC (golang.org/x/net/http2), WebSocket
// upgrades and plain TCP, routed by a route.Table swapped atomically.
//
//	p, err := proxy.New(proxy.Config{Registerer: reg})
//	t, err := route.New(route.Config{Loads: p.Loads(), ...})
//	p.SetTable(t)
//	go p.Serve(outboundListener, proxy.Mode{Kind: proxy.Outbound})
//	go p.Serve(inboundListener, proxy.Mode{Kind: proxy.Inbound, Cluster: "local-app"})
//	...
//	p.Shutdown(ctx)
//
// Per client connection one goroutine reads a request, routes it, writes
// it upstream on a pooled connection and streams the response back; no
// goroutine hand-offs happen on the HTTP/1.1 path. Malformed or ambiguous
// requests (RFC 9112 framing, request smuggling vectors) get 400 and the
// connection is closed; over-limit heads get 431 or 414.
//
// Retries: connect failures always retry on another endpoint; other
// failures retry per the route's policy when the request can be replayed
// (no body, or a body that fits the replay buffer), never on the same host
// twice. The net/http path (h2c clients, HTTP2 clusters) decides the same
// way (attempt), streams bodies while keeping a replay copy (replayBody),
// and also retries trailers-only gRPC responses by grpc-status. Passive outlier detection ejects endpoints after consecutive 5xx
// or connect failures, with backoff and a max-ejection percentage.
package proxy
