package proxy

import (
	"io"
	"net/http"
	"strings"

	"github.com/shoal-mesh/shoal/sidecar/authz"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// PeerID is implemented by PeerIdentity connections that name their
// authenticated peer: its SPIFFE ID, which authorization policies match.
type PeerID interface {
	PeerID() string
}

// callerID returns the SPIFFE ID of the connection's authenticated peer,
// "" if there is none. Like XFCC it is read after the first request.
func (c *conn) callerID() string {
	if pi, ok := c.nc.(PeerID); ok && c.mode.Kind == Inbound {
		return pi.PeerID()
	}
	return ""
}

// inboundDenied is the authorization hook of the inbound listener, shared
// by the HTTP/1.1 and HTTP/2 paths: the reason the table's policy denies
// the request, or "" (allowed, or not an inbound listener).
func inboundDenied(t *route.Table, m Mode, caller string, v *route.Request) string {
	if m.Kind != Inbound || t.Authz == nil {
		return ""
	}
	return t.Authz.Check(&authz.Request{Caller: caller, Method: v.Method, Path: v.Path})
}

// writeDenied answers a denied request on the net/http path: a gRPC call
// gets a trailers-only PERMISSION_DENIED (grpc-status 7), anything else
// 403 with the reason. It returns the status code sent.
func writeDenied(w http.ResponseWriter, r *http.Request, reason string) int {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		h := w.Header()
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", "7")
		h.Set("Grpc-Message", grpcMessage(reason))
		w.WriteHeader(http.StatusOK)
		return http.StatusOK
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	io.WriteString(w, reason+"\n")
	return http.StatusForbidden
}

// grpcMessage percent-encodes s as grpc-message requires.
func grpcMessage(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch < ' ' || ch > '~' || ch == '%' {
			b.WriteString("%")
			b.WriteByte("0123456789ABCDEF"[ch>>4])
			b.WriteByte("0123456789ABCDEF"[ch&15])
			continue
		}
		b.WriteByte(ch)
	}
	return b.String()
}
