// Package portmux serves gRPC and plain HTTP/1.1 on one listener: the
// management API port answers gRPC (HTTP/2) and the registration
// endpoint's JSON for clients without gRPC (the Node.js package uses
// node:https, which speaks HTTP/1.1). With TLS the connection is split by
// ALPN after the handshake ("h2" is gRPC, anything else HTTP/1.1); in
// plain text by the HTTP/2 client preface, which no HTTP/1.1 request
// starts with (RFC 9113 section 3.4).
package portmux

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// handshakeTimeout bounds a connection's TLS handshake or first bytes.
const handshakeTimeout = 10 * time.Second

// preface is the start of the HTTP/2 client connection preface.
const preface = "PRI * HTTP/2.0"

// Mux splits the connections of a listener between GRPC and HTTP. Create
// it with New, serve with Serve, stop with Close.
type Mux struct {
	l    net.Listener
	tls  *tls.Config // nil: plain text
	log  *slog.Logger
	grpc *chanListener
	http *chanListener

	wg        sync.WaitGroup // per-connection sniffing goroutines
	closeOnce sync.Once

	// mu guards sniffing and closed.
	mu       sync.Mutex
	sniffing map[net.Conn]struct{}
	closed   bool
}

// New returns a Mux over l. With tlsCfg it serves TLS (NextProtos is set
// to h2 and http/1.1; tlsCfg must not be modified afterwards), else plain
// text.
func New(l net.Listener, tlsCfg *tls.Config, log *slog.Logger) *Mux {
	if tlsCfg != nil {
		tlsCfg = tlsCfg.Clone()
		tlsCfg.NextProtos = []string{"h2", "http/1.1"}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Mux{l: l, tls: tlsCfg, log: log, grpc: newChanListener(l.Addr()), http: newChanListener(l.Addr()), sniffing: map[net.Conn]struct{}{}}
}

// GRPC is the listener for the gRPC server; serve it with Creds.
func (m *Mux) GRPC() net.Listener { return m.grpc }

// HTTP is the listener for the HTTP/1.1 server. Its connections are
// *tls.Conn when the Mux serves TLS (http.Server fills Request.TLS).
func (m *Mux) HTTP() net.Listener { return m.http }

// Creds are the gRPC server credentials for GRPC's connections: the TLS
// handshake is already done, so they only describe it.
func (m *Mux) Creds() credentials.TransportCredentials { return doneCreds{} }

// Serve accepts connections until the listener is closed (by Close) and
// returns nil then, or the accept error.
func (m *Mux) Serve() error {
	for {
		c, err := m.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		m.wg.Go(func() { m.dispatch(c) })
	}
}

// dispatch handshakes c and hands it to the gRPC or HTTP listener.
func (m *Mux) dispatch(c net.Conn) {
	if !m.track(c) {
		c.Close()
		return
	}
	defer m.untrack(c)
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	var h2 bool
	if m.tls != nil {
		tc := tls.Server(c, m.tls)
		if err := tc.HandshakeContext(context.Background()); err != nil {
			m.log.Debug("TLS handshake failed", "remote", c.RemoteAddr(), "err", err)
			c.Close()
			return
		}
		h2, c = tc.ConnectionState().NegotiatedProtocol == "h2", tc
	} else {
		pc := &peekedConn{Conn: c, r: bufio.NewReaderSize(c, 512)}
		first, err := pc.r.Peek(len(preface))
		if err != nil && len(first) == 0 {
			c.Close()
			return
		}
		h2, c = string(first) == preface, pc
	}
	c.SetDeadline(time.Time{})
	dst := m.http
	if h2 {
		dst = m.grpc
	}
	dst.push(c)
}

// Close closes the listener and both split listeners, and waits for the
// connections being sniffed (at most handshakeTimeout). Idempotent.
func (m *Mux) Close() error {
	var err error
	m.closeOnce.Do(func() {
		err = m.l.Close()
		m.grpc.Close()
		m.http.Close()
		m.mu.Lock()
		m.closed = true
		for c := range m.sniffing {
			c.SetDeadline(time.Now()) // ends its handshake or peek now
		}
		m.mu.Unlock()
	})
	m.wg.Wait()
	return err
}

// track records c as being sniffed; false once the Mux is closed.
func (m *Mux) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.sniffing[c] = struct{}{}
	return true
}

func (m *Mux) untrack(c net.Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sniffing, c)
}

// chanListener is a net.Listener fed by the Mux.
type chanListener struct {
	addr net.Addr
	// conns carries dispatched connections to Accept.
	conns     chan net.Conn
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to Accept, or closes it once the listener is closed.
func (l *chanListener) push(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// peekedConn reads through the buffer that holds the sniffed bytes.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// doneCreds describe a connection whose handshake the Mux already did.
type doneCreds struct{}

var _ credentials.TransportCredentials = doneCreds{}

func (doneCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if tc, ok := c.(*tls.Conn); ok {
		return c, credentials.TLSInfo{State: tc.ConnectionState(), CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
	}
	return c, plainInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
}

func (doneCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("portmux: server credentials only")
}

func (doneCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (d doneCreds) Clone() credentials.TransportCredentials { return d }

func (doneCreds) OverrideServerName(string) error { return nil }

// plainInfo is the AuthInfo of a plain-text connection.
type plainInfo struct{ credentials.CommonAuthInfo }

func (plainInfo) AuthType() string { return "insecure" }
