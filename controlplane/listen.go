package controlplane

import (
	"fmt"
	"net"
	"strings"
)

// API authentication modes (Config.APIAuth, --api-auth).
const (
	// APIAuthAuto authenticates the management API when it listens beyond
	// loopback.
	APIAuthAuto = "auto"
	// APIAuthRequired authenticates it wherever it listens (tests use it
	// on loopback).
	APIAuthRequired = "required"
	// APIAuthOff serves it plain and open; beyond loopback only with
	// Insecure.
	APIAuthOff = "off"
)

// isLoopback reports whether a listen address (host:port, or an http URL
// for etcd) binds loopback only: 127.0.0.0/8, ::1 or "localhost". An empty
// host, 0.0.0.0, :: and every other name or address are beyond loopback.
func isLoopback(addr string) bool {
	addr = strings.TrimPrefix(strings.TrimPrefix(addr, "http://"), "https://")
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// apiAuthOn reports whether the management API authenticates its calls.
func (c *Config) apiAuthOn() bool {
	switch c.APIAuth {
	case APIAuthRequired:
		return true
	case APIAuthOff:
		return false
	}
	return !isLoopback(c.APIListen)
}

// xdsAuthOn reports whether the xDS port binds streams to identities.
func (c *Config) xdsAuthOn() bool {
	switch c.XDSAuth {
	case APIAuthRequired:
		return true
	case APIAuthOff:
		return false
	}
	return !isLoopback(c.XDSListen)
}

// gossipAuthOn reports whether gossip is encrypted with a keyring the
// control plane hands to authenticated members, and requires tickets.
func (c *Config) gossipAuthOn() bool {
	if c.GossipListen == "" {
		return false
	}
	switch c.GossipAuth {
	case APIAuthRequired:
		return true
	case APIAuthOff:
		return false
	}
	return !isLoopback(c.GossipListen)
}

// etcdTLSOn reports whether the embedded etcd serves TLS with client
// certificates.
func (c *Config) etcdTLSOn() bool {
	if len(c.EtcdEndpoints) > 0 {
		return false
	}
	switch c.EtcdTLS {
	case APIAuthRequired:
		return true
	case APIAuthOff:
		return false
	}
	listen := c.EtcdListen
	if listen == "" {
		listen = "127.0.0.1:2379"
	}
	return !isLoopback(listen) || (c.EtcdPeerListen != "" && !isLoopback(c.EtcdPeerListen))
}

// listenIPs are the specific IPs of listen addresses, for certificate
// SANs (0.0.0.0 and names are left out).
func listenIPs(addrs ...string) []net.IP {
	var ips []net.IP
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
			ips = append(ips, ip)
		}
	}
	return ips
}

// checkSecurity applies the one rule of every listener: bound to loopback
// it may stay plain; beyond loopback it needs TLS and authentication, or
// Insecure. It returns the first violation as one line naming the flag.
func (c *Config) checkSecurity() error {
	switch c.APIAuth {
	case "", APIAuthAuto, APIAuthRequired, APIAuthOff:
	default:
		return fmt.Errorf("controlplane: --api-auth %q: want auto, required or off", c.APIAuth)
	}
	switch c.XDSAuth {
	case "", APIAuthAuto, APIAuthRequired, APIAuthOff:
	default:
		return fmt.Errorf("controlplane: --xds-auth %q: want auto, required or off", c.XDSAuth)
	}
	switch c.EtcdTLS {
	case "", APIAuthAuto, APIAuthRequired, APIAuthOff:
	default:
		return fmt.Errorf("controlplane: --etcd-tls %q: want auto, required or off", c.EtcdTLS)
	}
	switch c.GossipAuth {
	case "", APIAuthAuto, APIAuthRequired, APIAuthOff:
	default:
		return fmt.Errorf("controlplane: --gossip-auth %q: want auto, required or off", c.GossipAuth)
	}
	if doors := c.openDoors(); len(doors) > 0 && !c.Insecure {
		if strings.HasPrefix(doors[0], "--etcd-endpoints") {
			return fmt.Errorf("controlplane: %s, or give --insecure on a trusted network", doors[0])
		}
		return fmt.Errorf("controlplane: %s: bind 127.0.0.1, or give --insecure on a trusted network", doors[0])
	}
	return nil
}

// openDoors lists the listeners that would serve plain text without
// authentication beyond loopback, one line each.
func (c *Config) openDoors() (doors []string) {
	type listener struct{ flag, addr, what string }
	var plain []listener
	if !c.apiAuthOn() {
		plain = append(plain, listener{"--api-listen", c.APIListen, "anyone who reaches it could rewrite routes"})
	}
	if !c.xdsAuthOn() {
		plain = append(plain, listener{"--xds-listen", c.XDSListen, "anyone who reaches it could read every cluster and endpoint"})
	}
	if len(c.EtcdEndpoints) == 0 && !c.etcdTLSOn() {
		etcd := c.EtcdListen
		if etcd == "" {
			etcd = "127.0.0.1:2379"
		}
		plain = append(plain, listener{"--etcd-listen", etcd, "anyone who reaches it could register instances and take over traffic"})
		if c.EtcdPeerListen != "" {
			plain = append(plain, listener{"--etcd-peer-listen", c.EtcdPeerListen, "anyone who reaches it could join the etcd cluster"})
		}
	}
	for _, e := range c.EtcdEndpoints {
		if strings.HasPrefix(e, "http://") && !isLoopback(e) {
			doors = append(doors, fmt.Sprintf("--etcd-endpoints %s is beyond loopback in plain text (anyone on the path could read the registry and, without etcd authentication, rewrite it); use https:// with --etcd-cacert, --etcd-cert and --etcd-key", e))
			break
		}
	}
	if c.GossipListen != "" && !c.gossipAuthOn() && len(c.GossipKeys) == 0 {
		plain = append(plain, listener{"--gossip-listen", c.GossipListen, "anyone who reaches it could join gossip and mark any instance unhealthy"})
	}
	for _, e := range c.EtcdEndpoints {
		if strings.HasPrefix(e, "http://") && !isLoopback(e) {
			doors = append(doors, fmt.Sprintf("--etcd-endpoints %s is plain http beyond loopback (anyone on the path could read and write the mesh's state): use https:// with --etcd-cacert/--etcd-cert/--etcd-key", e))
		}
	}
	for _, l := range plain {
		if !isLoopback(l.addr) {
			doors = append(doors, fmt.Sprintf("%s %s is beyond loopback in plain text without authentication (%s)", l.flag, l.addr, l.what))
		}
	}
	return doors
}
