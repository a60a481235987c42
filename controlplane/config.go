package controlplane

import (
	"log/slog"
	"time"

	"github.com/shoal-mesh/shoal/internal/metric"
)

// Config configures a control plane. It is copied by New and never mutated.
type Config struct {
	// EtcdEndpoints, when set, makes the control plane use an external etcd
	// cluster and start none of its own.
	EtcdEndpoints []string
	// DataDir is the embedded etcd's data directory (ignored with
	// EtcdEndpoints). Zero means "shoal-data" in the working directory.
	DataDir string
	// EtcdListen is the embedded etcd's client address (host:port); its
	// peer port is the next port up. Zero means 127.0.0.1:2379.
	EtcdListen string
	// EtcdPeerListen is the embedded etcd's raft peer address; zero means
	// EtcdListen's port + 1.
	EtcdPeerListen string
	// EtcdCAFile, EtcdCertFile and EtcdKeyFile configure TLS to an
	// external etcd (EtcdEndpoints with https://, as etcdctl's --cacert,
	// --cert and --key): the CA that signed etcd's serving certificate
	// (zero: the system roots) and the client certificate etcd's
	// --client-cert-auth requires. The files are re-read when they change
	// (a renewed Kubernetes Secret), at the next connection.
	EtcdCAFile, EtcdCertFile, EtcdKeyFile string
	// EtcdUsername and EtcdPassword use etcd's own authentication
	// (etcdctl user add, auth enable) for the external etcd.
	EtcdUsername, EtcdPassword string

	// XDSListen, APIListen and AdminListen are the listen addresses of the
	// xDS server, the management API and the admin/metrics HTTP server.
	// Port 0 picks a free port (see Server.Addrs).
	XDSListen   string
	APIListen   string
	AdminListen string
	// Pprof adds net/http/pprof's /debug/pprof/ to the admin listener.
	Pprof bool
	// GossipListen is the memberlist bind address.
	GossipListen string
	// GossipJoin lists gossip seeds.
	GossipJoin []string
	// GossipKeys are 32-byte AES-GCM keys, the primary first; empty means
	// no encryption.
	GossipKeys [][]byte
	// GossipLabel keeps meshes apart; zero means "shoal".
	GossipLabel string
	// GossipAuth (--gossip-auth) is auto (zero: authenticated when
	// GossipListen is beyond loopback), required or off. Authenticated
	// gossip is encrypted (GossipKeys, else a keyring kept in etcd at
	// GossipKeyringKey, made on first start), hands its keyring and tickets
	// to members presenting an SVID (GossipService on the xDS port), and
	// ignores health claims no ticket for the instance's service backs.
	GossipAuth string

	// CADir holds the mesh CA from `shoal ca init` (ca.crt, ca.key,
	// root.crt); zero means a dev CA created under DataDir/ca on first
	// start (and logged).
	CADir string
	// TrustDomain is the SPIFFE trust domain; zero means shoal.local.
	TrustDomain string
	// SVIDTTL is the lifetime of workload certificates; zero means 24h.
	SVIDTTL time.Duration
	// TLSNames are DNS names (or IPs) the serving certificate of the xDS
	// and API ports also carries, for clients that check a host name
	// (a gRPC bootstrap naming a Kubernetes Service). Shoal's own clients
	// verify the control plane's SPIFFE ID and need none.
	TLSNames []string

	// APIAuth is APIAuthAuto (zero), APIAuthRequired or APIAuthOff: when
	// on, the management API serves TLS with a certificate from the mesh
	// CA and every call needs the admin SVID, a workload SVID (read only)
	// or a bearer token (shoal tokens create --admin|--viewer).
	APIAuth string
	// XDSAuth is APIAuthAuto (zero), APIAuthRequired or APIAuthOff for
	// the xDS port: when on, ADS, LRS and DrainService need a workload
	// SVID over TLS and a node may only name its SVID's service.
	XDSAuth string
	// EtcdTLS is APIAuthAuto (zero), APIAuthRequired or APIAuthOff for
	// the embedded etcd: when on, it serves clients and peers over TLS
	// with a certificate from the mesh CA and requires client
	// certificates of the mesh CA (shoal ca issue-admin writes one).
	EtcdTLS string
	// Insecure lets listeners serve plain text without authentication
	// beyond loopback; without it New refuses such a configuration.
	Insecure bool

	// ID names this control plane among several; zero means the host name
	// and xDS port.
	ID string
	// ShutdownTimeout bounds the graceful stop of the gRPC servers; zero
	// means 5s.
	ShutdownTimeout time.Duration

	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registry receives the control plane's metrics and is served on
	// /metrics; nil means a private one with the Go runtime and process
	// collectors.
	Registry *metric.Registry
}

// DefaultConfig returns the documented defaults of `shoal controlplane`.
func DefaultConfig() Config {
	return Config{
		DataDir:      "shoal-data",
		EtcdListen:   "127.0.0.1:2379",
		XDSListen:    "127.0.0.1:18000",
		APIListen:    "127.0.0.1:18001",
		AdminListen:  "127.0.0.1:18002",
		GossipListen: "127.0.0.1:7946",
	}
}
