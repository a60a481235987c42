package identity

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"

	"google.golang.org/grpc/credentials"
)

// tlsRecordHandshake is the first byte of every TLS connection (a
// handshake record, RFC 8446 section 5.1); an HTTP/2 client preface starts
// with 'P'.
const tlsRecordHandshake = 0x16

// SniffingCreds are gRPC server credentials for the xDS port: a client
// that starts with a TLS handshake gets TLS with cfg (the IdentityService
// needs it: tokens and SVIDs are secrets), a client that starts with the
// HTTP/2 preface gets the plain connection as before (xDS clients on
// loopback). Handlers that need a secure channel check the peer's
// AuthInfo (see tlsPeer).
type SniffingCreds struct {
	cfg *tls.Config
}

// NewSniffingCreds returns credentials serving TLS with cfg; cfg must not
// be modified afterwards. NextProtos is set to h2 (gRPC requires ALPN).
func NewSniffingCreds(cfg *tls.Config) *SniffingCreds {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	return &SniffingCreds{cfg: cfg}
}

var _ credentials.TransportCredentials = (*SniffingCreds)(nil)

// ServerHandshake implements credentials.TransportCredentials.
func (c *SniffingCreds) ServerHandshake(nc net.Conn) (net.Conn, credentials.AuthInfo, error) {
	pc := &peekedConn{Conn: nc, r: bufio.NewReaderSize(nc, 512)}
	first, err := pc.r.Peek(1)
	if err != nil {
		return nil, nil, err
	}
	if first[0] != tlsRecordHandshake {
		return pc, plainInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
	}
	tc := tls.Server(pc, c.cfg)
	if err := tc.HandshakeContext(context.Background()); err != nil {
		tc.Close()
		return nil, nil, err
	}
	return tc, credentials.TLSInfo{
		State:          tc.ConnectionState(),
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
	}, nil
}

// ClientHandshake implements credentials.TransportCredentials; these
// credentials are for servers only.
func (c *SniffingCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("identity: SniffingCreds are server credentials")
}

// Info implements credentials.TransportCredentials.
func (c *SniffingCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

// Clone implements credentials.TransportCredentials.
func (c *SniffingCreds) Clone() credentials.TransportCredentials {
	return &SniffingCreds{cfg: c.cfg.Clone()}
}

// OverrideServerName implements credentials.TransportCredentials.
func (c *SniffingCreds) OverrideServerName(string) error { return nil }

// plainInfo is the AuthInfo of a connection served without TLS.
type plainInfo struct{ credentials.CommonAuthInfo }

func (plainInfo) AuthType() string { return "insecure" }

// peekedConn reads through the buffer that holds the sniffed byte.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
