// Package adminauth guards an admin HTTP listener bound beyond loopback
// (issue 14): probes and Prometheus keep /metrics, /ready and /healthz
// open; every other path (config_dump, clusters, members, pprof, the
// gossip keyring, the dashboard) is served to loopback peers only, or to a
// caller the component authorizes — the admin SVID over TLS, or an admin
// bearer token over TLS on the control plane.
//
// One port serves both: a connection whose first byte starts a TLS
// handshake gets TLS (Listener), any other is plain HTTP, so a kubelet
// probe or a Prometheus scrape in plain text works as before.
//
//	l = adminauth.Listener(l, tlsConfig)              // tlsConfig may be nil: plain only
//	srv := &http.Server{Handler: adminauth.Handler(mux, authorize), ConnContext: adminauth.ConnContext}
//	srv.Serve(l)
package adminauth

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
)

// OpenPaths are served to anyone: Kubernetes probes and Prometheus.
var OpenPaths = []string{"/metrics", "/ready", "/healthz"}

// Listener wraps l so that connections starting with a TLS handshake are
// served with cfg (nil: never, every connection is plain). The sniffing
// happens on the connection's first Read, in the goroutine serving it, so
// a slow client never holds up Accept.
func Listener(l net.Listener, cfg *tls.Config) net.Listener {
	return &listener{Listener: l, cfg: cfg}
}

type listener struct {
	net.Listener
	cfg *tls.Config
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, cfg: l.cfg}, nil
}

// conn is plain or TLS, decided by its first byte (0x16: a TLS handshake
// record, RFC 8446 §5.1).
type conn struct {
	net.Conn
	cfg  *tls.Config
	once sync.Once
	br   *bufio.Reader
	// tls is set by sniff when the client speaks TLS; atomic because the
	// server may Close the connection from another goroutine.
	tls atomic.Pointer[tls.Conn]
}

func (c *conn) sniff() {
	c.br = bufio.NewReader(c.Conn)
	if b, err := c.br.Peek(1); err == nil && b[0] == 0x16 && c.cfg != nil {
		c.tls.Store(tls.Server(&peeked{Conn: c.Conn, r: c.br}, c.cfg))
	}
}

func (c *conn) Read(p []byte) (int, error) {
	c.once.Do(c.sniff)
	if t := c.tls.Load(); t != nil {
		return t.Read(p)
	}
	return c.br.Read(p)
}

func (c *conn) Write(p []byte) (int, error) {
	c.once.Do(c.sniff)
	if t := c.tls.Load(); t != nil {
		return t.Write(p)
	}
	return c.Conn.Write(p)
}

func (c *conn) Close() error {
	if t := c.tls.Load(); t != nil {
		return t.Close()
	}
	return c.Conn.Close()
}

// state returns the TLS state once the handshake is done, else nil.
func (c *conn) state() *tls.ConnectionState {
	t := c.tls.Load()
	if t == nil {
		return nil
	}
	st := t.ConnectionState()
	if !st.HandshakeComplete {
		return nil
	}
	return &st
}

// peeked reads through the bufio.Reader that holds the sniffed byte.
type peeked struct {
	net.Conn
	r *bufio.Reader
}

func (p *peeked) Read(b []byte) (int, error) { return p.r.Read(b) }

type connKey struct{}

// ConnContext is http.Server.ConnContext for a server on a Listener: it
// lets handlers find the connection's TLS state (TLSState).
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if ac, ok := c.(*conn); ok {
		return context.WithValue(ctx, connKey{}, ac)
	}
	return ctx
}

// TLSState returns the TLS state of the request's connection, or nil for
// plain text. It needs ConnContext.
func TLSState(r *http.Request) *tls.ConnectionState {
	if r.TLS != nil {
		return r.TLS
	}
	if ac, ok := r.Context().Value(connKey{}).(*conn); ok {
		return ac.state()
	}
	return nil
}

// Authorizer decides whether a request from beyond loopback for a closed
// path may be served; the error is the reason told to the caller.
type Authorizer func(r *http.Request) error

// Handler serves OpenPaths to anyone, everything to loopback peers, and
// the rest to callers authorize accepts (nil: loopback peers only): 401
// with the reason otherwise.
func Handler(next http.Handler, authorize Authorizer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slices.Contains(OpenPaths, r.URL.Path) || loopbackPeer(r) {
			next.ServeHTTP(w, r)
			return
		}
		if authorize == nil {
			http.Error(w, fmt.Sprintf("%s is served on loopback only (this admin listener is beyond loopback and has no identity to authenticate callers); %v stay open", r.URL.Path, OpenPaths), http.StatusForbidden)
			return
		}
		if err := authorize(r); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shoal admin"`)
			http.Error(w, fmt.Sprintf("%s needs the admin identity: %v", r.URL.Path, err), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func loopbackPeer(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Beyond reports whether a listen address binds beyond loopback (an empty
// host, 0.0.0.0, :: and names other than localhost do).
func Beyond(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return true
	}
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}
