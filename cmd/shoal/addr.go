package main

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Address flags are checked before anything starts, so that a typo exits
// at once naming the flag instead of being retried forever by a dialer
// (`--xds a:1,b:2` once looped on "too many colons in address").

// checkHostPort checks that v is HOST:PORT with a port in 0-65535 and a
// host that is empty (all interfaces, for listeners), an IP address or a
// DNS name. flag names the flag in the error.
func checkHostPort(flag, v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return usageErrorf("%s %q: want HOST:PORT: %v", flag, v, strings.TrimPrefix(err.Error(), "address "+v+": "))
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (port != "0" && n == 0) {
		return usageErrorf("%s %q: port %q is not a number in 0-65535", flag, v, port)
	}
	if host != "" && net.ParseIP(host) == nil && !isDNSName(host) {
		return usageErrorf("%s %q: host %q is neither an IP address nor a DNS name", flag, v, host)
	}
	return nil
}

// checkListen checks a listener flag; empty disables the listener when
// optional is true.
func checkListen(flag, v string, optional bool) error {
	if v == "" && optional {
		return nil
	}
	return checkHostPort(flag, v)
}

// checkHostPorts checks a comma-separated list of HOST:PORT; at least one
// entry is required.
func checkHostPorts(flag, list string) ([]string, error) {
	addrs := splitList(list)
	if len(addrs) == 0 {
		return nil, usageErrorf("%s: at least one HOST:PORT is required", flag)
	}
	for _, a := range addrs {
		if err := checkHostPort(flag, a); err != nil {
			return nil, err
		}
	}
	return addrs, nil
}

// checkURLList checks a comma-separated list of endpoints, each HOST:PORT or
// a URL with one of schemes and a HOST:PORT (etcd client URLs, admin
// addresses).
func checkURLList(flag, list string, schemes ...string) ([]string, error) {
	eps := splitList(list)
	if len(eps) == 0 {
		return nil, usageErrorf("%s: at least one endpoint is required", flag)
	}
	for _, ep := range eps {
		if err := checkURL(flag, ep, schemes...); err != nil {
			return nil, err
		}
	}
	return eps, nil
}

func checkURL(flag, ep string, schemes ...string) error {
	if !strings.Contains(ep, "://") {
		return checkHostPort(flag, ep)
	}
	u, err := url.Parse(ep)
	if err != nil {
		return usageErrorf("%s %q: %v", flag, ep, err)
	}
	ok := false
	for _, s := range schemes {
		ok = ok || u.Scheme == s
	}
	if !ok {
		return usageErrorf("%s %q: scheme %q, want %s", flag, ep, u.Scheme, strings.Join(schemes, " or "))
	}
	if u.Path != "" && u.Path != "/" {
		return usageErrorf("%s %q: want %s://HOST:PORT without a path", flag, ep, u.Scheme)
	}
	return checkHostPort(flag, u.Host)
}

// checkAdminAddr checks one member admin address (HOST:PORT or an http(s) URL).
func checkAdminAddr(flag, v string) error { return checkURL(flag, v, "http", "https") }

// isDNSName reports whether s is a syntactically valid DNS name (RFC 1123
// labels of letters, digits and hyphens, at most 253 characters).
func isDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
