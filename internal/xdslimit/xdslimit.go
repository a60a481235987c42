// Package xdslimit holds the size bound of xDS messages that the control
// plane and the proxies it configures agree on, so that what one may send the
// other accepts. It has no dependencies, so the slim sidecar links it.
package xdslimit

// MaxMessageSize is the largest xDS response the control plane sends
// (grpc.MaxSendMsgSize) and shoal's sidecars and gateways accept
// (grpc.MaxCallRecvMsgSize); gRPC's default receive limit is 4 MiB. Routes
// are what can make a response large: the management API and the control
// plane keep all routes together under routes.MaxTotalSize (2 MiB), which
// translates to route configurations of about four times that (outbound,
// gateway and the per-service ones each repeat rules: two 1 MiB routes made
// an 8.2 MB response), so this leaves about 4x headroom.
const MaxMessageSize = 32 << 20
