package sidecar

import (
	"crypto/x509"
	"log/slog"
	"time"

	"google.golang.org/grpc/backoff"

	"github.com/shoal-mesh/shoal/internal/metric"
)

// Mode is what a proxy fronts.
type Mode int

const (
	// ModeSidecar runs next to one app instance: it registers the app,
	// checks its health, serves inbound and outbound traffic.
	ModeSidecar Mode = iota
	// ModeGateway is the edge proxy: a public listener routed by the
	// `gateway` route table; it fronts no app.
	ModeGateway
)

// Registration modes (Config.RegisterVia, --register-via).
const (
	RegisterViaControlPlane = "controlplane"
	RegisterViaEtcd         = "etcd"
)

// Config configures a Proxy. It is copied by New and never mutated.
type Config struct {
	Mode Mode

	// Service is the app's service name (required in ModeSidecar).
	Service string
	// InstanceID names the app instance; zero means
	// "<service>-<hostname>-<app port>".
	InstanceID string
	// AppAddress and AppPort locate the local app; AppAddress zero means
	// 127.0.0.1. AppPort is required in ModeSidecar.
	AppAddress string
	AppPort    int
	// AppProtocol is http (zero value), http2, grpc or tcp.
	AppProtocol string
	// Zone, Weight and Metadata are registered with the instance.
	Zone     string
	Weight   int
	Metadata map[string]string

	// Register makes the sidecar register the app (the default for
	// `shoal sidecar`; --no-register turns it off when the app registers
	// itself).
	Register bool
	// RegisterVia is how the app is registered: RegisterViaControlPlane
	// (the control plane's RegistryService on the xDS addresses, with the
	// sidecar's SVID: etcd need not be reachable), RegisterViaEtcd
	// (straight into etcd at EtcdEndpoints, for trusted networks), or zero:
	// through the control plane when the sidecar has an identity
	// (JoinToken), else etcd.
	RegisterVia string
	// EtcdEndpoints are the etcd cluster's client endpoints for
	// registration in etcd: host:port, http(s)://host:port or unix(s)://path, as
	// clientv3 takes them; https and unixs use TLS verified against the
	// host's root CAs. Registration fails over between them.
	EtcdEndpoints []string
	// TTL of the registration lease; zero means 10s.
	TTL time.Duration

	// HealthPath is the app's HTTP health path; empty means a TCP connect
	// check. HealthInterval zero means 250ms.
	HealthPath     string
	HealthInterval time.Duration

	// XDS is the control plane's xDS address. Required.
	XDS string
	// XDSFallback are more control planes' xDS addresses (of the same
	// mesh), tried in turn after XDS: when the stream to one fails the
	// sidecar moves to the next at once, keeping its last good config (see
	// xdsclient.Client.Run). Nil means XDS only.
	XDSFallback []string
	// XDSSotW selects state-of-the-world xDS instead of delta.
	XDSSotW bool
	// XDSBackoff paces reconnects to the control plane; zero fields take
	// gRPC's connection backoff (1s x1.6 +-20%, capped at 30s).
	XDSBackoff backoff.Config
	// StateDir keeps the last good config for static stability, and the
	// workload identity (key 0600) when there is one.
	StateDir string

	// JoinToken, when set, gives the proxy a workload identity (an SVID
	// from the control plane's IdentityService): the inbound listener then
	// takes mTLS only and is registered as such, and upstream endpoints
	// that require mTLS get it. Empty means no identity (plain).
	JoinToken string
	// CABundle optionally pins the control plane's root CAs; nil means
	// the token's root fingerprint pins it.
	CABundle []*x509.Certificate
	// MTLS is MTLSAuto (zero value) or MTLSStrict; strict needs JoinToken.
	MTLS string
	// TrustDomain and Namespace make up the identity a sidecar asks for,
	// spiffe://<TrustDomain>/ns/<Namespace>/svc/<Service>; the control
	// plane refuses a token made for another. Zero values mean
	// shoal.local and default. The gateway takes its token's identity.
	TrustDomain, Namespace string

	// Listen is the inbound listener (to the local app); empty means none,
	// and the app is registered at its own port.
	Listen string
	// Outbound is the egress listener routed by Host header; empty means
	// none.
	Outbound string
	// Upstreams maps a service name to a local listen address that proxies
	// only to that service (e.g. orders=127.0.0.1:9001).
	Upstreams map[string]string
	// GatewayListen is the public listener in ModeGateway.
	GatewayListen string
	// TrustedHops is how many X-Forwarded-For hops the gateway trusts when
	// it takes the client IP for IP hash (0: the peer address).
	TrustedHops int
	// AdminListen serves /ready, /metrics, /config_dump, /clusters.
	AdminListen string
	// Pprof adds net/http/pprof's /debug/pprof/ to the admin listener;
	// off (the zero value) by default.
	Pprof bool

	// GossipListen is the memberlist bind address; empty disables gossip.
	GossipListen string
	// GossipJoin lists seeds.
	GossipJoin []string
	// GossipKey is an optional base64 32-byte key (AES-GCM), or several
	// separated by commas, the first primary (gossip.ParseKeys).
	GossipKey string
	// GossipLabel keeps meshes apart; zero means "shoal".
	GossipLabel string

	// WriteTimeout closes a client connection when no byte of its
	// response could be written for this long (a client that stopped
	// reading); progress-based, so a slow download that keeps reading is
	// not cut. Zero means proxy.DefaultWriteTimeout (60s); negative means
	// none.
	WriteTimeout time.Duration
	// AccessLog is where a line per request goes: "stdout", "stderr" or a
	// file path (appended to); empty means no access log.
	AccessLog string
	// AccessLogFormat is "text" (Envoy's default format; also when empty)
	// or "json".
	AccessLogFormat string
	// NoStallDetection turns stuck-endpoint detection off (it is on by
	// default: an endpoint holding several requests and answering none for
	// 1-2 s gets no new ones, and its waiting idempotent requests go
	// elsewhere). Long polls with no other traffic look the same.
	NoStallDetection bool
	// OTLPEndpoint is the OTLP/gRPC collector (host:port) spans are
	// exported to; empty means no tracing (trace context passes through).
	OTLPEndpoint string
	// TraceSampleRate is the share of new traces (requests without a
	// traceparent) that are sampled, 0..1; requests that carry one keep
	// its sampled flag.
	TraceSampleRate float64
	// TCPIdleTimeout closes both sides of a proxied TCP connection when no
	// byte moved either way for this long. Zero means
	// proxy.DefaultTCPIdleTimeout (1h); negative means never.
	TCPIdleTimeout time.Duration

	// DrainTimeout bounds, on shutdown, the wait for every proxy to ACK the
	// deregistration (DrainService.WaitRemoved) and then the graceful drain
	// of in-flight requests; zero means 10s.
	DrainTimeout time.Duration
	// DrainDelay is how long the sidecar keeps serving after it announced
	// it is leaving (gossip unhealthy, etcd key revoked) when it cannot ask
	// the control plane whether every proxy stopped sending (or registers
	// nothing); zero means 1s.
	DrainDelay time.Duration

	Logger *slog.Logger
	// Metrics receives the proxy's, the xDS client's and gossip's metrics
	// and is served on the admin /metrics; nil means a new registry that
	// also has the Go runtime and process metrics.
	Metrics *metric.Registry
}
