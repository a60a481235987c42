package etcdlite

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strings"
)

// endpoint is one etcd endpoint translated for gRPC.
type endpoint struct {
	addr       string // what gRPC dials: host:port, or unix:path
	serverName string // for TLS certificate checks
	authority  string // the :authority of calls when this endpoint is first
}

// parseEndpoints translates etcd endpoints the way clientv3 does
// (client/v3/internal/endpoint): http(s)://host:port and unix(s)://path
// URLs, or bare host:port. secure reports https/unixs, which must not be
// mixed with plaintext endpoints (clientv3 would silently use the first
// one's scheme for all).
func parseEndpoints(in []string) (eps []endpoint, secure bool, err error) {
	if len(in) == 0 {
		return nil, false, errors.New("etcdlite: no endpoints")
	}
	var plain bool
	for _, raw := range in {
		ep, tls, err := parseEndpoint(raw)
		if err != nil {
			return nil, false, err
		}
		eps = append(eps, ep)
		secure, plain = secure || tls, plain || !tls
	}
	if secure && plain {
		return nil, false, fmt.Errorf("etcdlite: endpoints %v mix TLS (https, unixs) and plaintext", in)
	}
	return eps, secure, nil
}

func parseEndpoint(raw string) (ep endpoint, secure bool, err error) {
	bad := func(why string) (endpoint, bool, error) {
		return endpoint{}, false, fmt.Errorf("etcdlite: endpoint %q: %s", raw, why)
	}
	if scheme, p, ok := strings.Cut(raw, ":"); ok && (scheme == "unix" || scheme == "unixs") {
		p = strings.TrimPrefix(p, "//") // unix:///abs and unix://rel as well as unix:rel
		if p == "" {
			return bad("no socket path")
		}
		// The socket's file name is the TLS server name, as in clientv3, and
		// localhost the authority, as in gRPC's own unix resolver.
		return endpoint{addr: "unix:" + p, serverName: path.Base(p), authority: "localhost"}, scheme == "unixs", nil
	}
	if !strings.Contains(raw, "://") {
		if _, _, err := net.SplitHostPort(raw); err != nil {
			return bad("want host:port or an http(s):// or unix(s):// URL")
		}
		return endpoint{addr: raw, serverName: raw, authority: raw}, false, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad(err.Error())
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return bad("scheme " + u.Scheme + " is not http, https, unix or unixs")
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		return bad("want a host:port")
	}
	return endpoint{addr: u.Host, serverName: u.Host, authority: u.Host}, u.Scheme == "https", nil
}
