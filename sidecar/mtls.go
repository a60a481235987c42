package sidecar

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-mesh/shoal/identity"
	sidecaridentity "github.com/shoal-mesh/shoal/sidecar/identity"
	"github.com/shoal-mesh/shoal/sidecar/proxy"
)

// MTLS modes (--mtls).
const (
	// MTLSAuto (the default with an identity): mTLS to endpoints the
	// control plane marks as mTLS, plain HTTP to the others.
	MTLSAuto = "auto"
	// MTLSStrict: mTLS to every endpoint; a plain upstream fails to
	// connect.
	MTLSStrict = "strict"
)

// mtls is a sidecar's mTLS: the inbound listener's server config and the
// upstream client configs, all following the identity client's rotation.
// Safe for concurrent use.
type mtls struct {
	id     *sidecaridentity.Client
	count  func(direction string, err error)
	server *tls.Config

	// clients caches a client config per required server ID; configs read
	// the current SVID and bundle per handshake, so they never go stale.
	clients sync.Map // string -> *tls.Config
}

func newMTLS(id *sidecaridentity.Client, count func(string, error)) *mtls {
	m := &mtls{id: id, count: count}
	// Any SVID of our own trust domain may call; authorization policies
	// narrow this per service.
	// ALPN: h2 for HTTP/2 and gRPC callers (grpc-go insists on it),
	// http/1.1 for the rest; a caller without ALPN is served by sniffing.
	m.server = &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{"h2", "http/1.1"}}
	tlsconfig.HookMTLSServerConfig(m.server, id, id, func(peer spiffeid.ID, _ [][]*x509.Certificate) error {
		if own := id.ID(); !peer.MemberOf(own.TrustDomain()) {
			return fmt.Errorf("caller %s is not in trust domain %s", peer, own.TrustDomain())
		}
		return nil
	})
	return m
}

var _ proxy.UpstreamTLS = (*mtls)(nil)

// ClientConfig implements proxy.UpstreamTLS: present our SVID, require
// serverID.
func (m *mtls) ClientConfig(serverID string) *tls.Config {
	if c, ok := m.clients.Load(serverID); ok {
		return c.(*tls.Config)
	}
	want, err := spiffeid.FromString(serverID)
	var auth tlsconfig.Authorizer = tlsconfig.AuthorizeID(want)
	if err != nil {
		auth = func(spiffeid.ID, [][]*x509.Certificate) error {
			return fmt.Errorf("bad server ID %q: %w", serverID, err)
		}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}}
	tlsconfig.HookMTLSClientConfig(cfg, m.id, m.id, auth)
	c, _ := m.clients.LoadOrStore(serverID, cfg)
	return c.(*tls.Config)
}

// serverID is the SPIFFE ID a destination service's endpoints must
// present: the service in our own namespace and trust domain.
func (m *mtls) serverID(service string) string {
	own := m.id.ID()
	ns, _, err := identity.ParseServiceID(own)
	if err != nil {
		return ""
	}
	id, err := identity.ServiceID(own.TrustDomain(), ns, service)
	if err != nil {
		return ""
	}
	return id.String()
}

// listener wraps the inbound listener: every connection must complete a
// TLS 1.3 handshake with a client SVID of our trust domain before a byte
// reaches the proxy.
func (m *mtls) listener(l net.Listener) net.Listener { return &mtlsListener{Listener: l, m: m} }

type mtlsListener struct {
	net.Listener
	m *mtls
}

func (l *mtlsListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	// The proxy serves the connection from its raw read callbacks once the
	// handshake is done (proxy.RawTLSConn).
	return &mtlsConn{Conn: tls.Server(proxy.NewTLSSock(nc), l.m.server), m: l.m}, nil
}

// mtlsConn is an inbound mTLS connection. The handshake runs on the first
// Read, on the connection's own goroutine (never in the accept loop) and
// under the proxy's read deadline.
type mtlsConn struct {
	*tls.Conn
	m    *mtls
	once sync.Once
	err  error
	xfcc []byte
	peer string
	// ready: the handshake is done and the peer's SVID accepted.
	ready bool
}

var (
	_ proxy.PeerIdentity = (*mtlsConn)(nil)
	_ proxy.PeerID       = (*mtlsConn)(nil)
	_ proxy.RawTLSConn   = (*mtlsConn)(nil)
)

func (c *mtlsConn) Read(p []byte) (int, error) {
	c.once.Do(c.handshake)
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(p)
}

func (c *mtlsConn) handshake() {
	c.err = c.Conn.HandshakeContext(context.Background())
	c.m.count("inbound", c.err)
	if c.err != nil {
		return
	}
	certs := c.Conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		c.err = errors.New("sidecar: mTLS peer sent no certificate")
		return
	}
	peer, err := x509svid.IDFromCert(certs[0])
	if err != nil {
		c.err = err
		return
	}
	c.peer = peer.String()
	// Envoy's x-forwarded-client-cert: By is the callee, URI the caller.
	c.xfcc = fmt.Appendf(nil, "By=%s;URI=%s", c.m.id.ID(), peer)
	c.ready = true
}

// RawTLS implements proxy.RawTLSConn: the *tls.Conn once the handshake
// ran (on the first Read, by the connection's own goroutine, which is the
// one that calls RawTLS) and accepted the peer; nil before or after a
// failure.
func (c *mtlsConn) RawTLS() *tls.Conn {
	if !c.ready {
		return nil
	}
	return c.Conn
}

// XFCC implements proxy.PeerIdentity.
func (c *mtlsConn) XFCC() []byte { return c.xfcc }

// PeerID implements proxy.PeerID.
func (c *mtlsConn) PeerID() string { return c.peer }

// controlPlaneCreds are the transport credentials of the sidecar's calls
// to the control plane's xDS port (ADS, LRS, the drain gate): with an
// identity, mTLS presenting the current SVID and requiring the control
// plane's own ID (spiffe://<td>/shoal/controlplane) from the current
// bundle, as a control plane that authenticates its xDS port needs;
// without one, plain text (a control plane on loopback or a trusted
// network).
func (p *Proxy) controlPlaneCreds() credentials.TransportCredentials {
	if p.id == nil {
		return insecure.NewCredentials()
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	// The trust domain is known once the first SVID is in: per handshake.
	tlsconfig.HookMTLSClientConfig(cfg, p.id, p.id, func(got spiffeid.ID, _ [][]*x509.Certificate) error {
		want, err := spiffeid.FromSegments(p.id.ID().TrustDomain(), "shoal", "controlplane")
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("the xDS server is %s, not %s", got, want)
		}
		return nil
	})
	return credentials.NewTLS(cfg)
}
