// Package freeport picks loopback ports for processes that must be told
// their port before they bind it (a child process, embedded etcd's
// advertised URLs, a sidecar's app port).
//
// Asking the kernel for port 0 and closing the listener is racy on a busy
// machine: the kernel hands out the same ephemeral range for outgoing
// connections' source ports and for other processes' port-0 listeners, so
// the port is often taken again before its new owner binds it (a CI run
// of `shoal demo` lost its admin port that way). freeport instead picks a
// random port below the ephemeral range, which the kernel never assigns
// by itself, checks that TCP and UDP (gossip binds both) are free on it,
// and never hands the same port out twice in one process. Processes that
// pick concurrently collide only if they draw the same random port within
// the moment between pick and bind.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Host is the address ports are picked on.
const Host = "127.0.0.1"

const (
	lowest   = 10000 // below: well-known and registered service ports
	attempts = 200
)

// reserved are shoal's own default ports, never handed out so that a
// user's running control plane or sidecar does not break a test run.
var reserved = map[int]bool{
	2379: true, 2380: true, 7946: true,
	15000: true, 15001: true, 15006: true, 15020: true,
	18000: true, 18001: true, 18002: true, 18003: true,
}

var (
	mu      sync.Mutex
	given   = map[int]bool{}
	ceiling int // exclusive upper bound; 0 until first use
)

// Port returns a loopback port that is free for TCP and UDP right now and
// that this process has not handed out before.
func Port() (int, error) {
	mu.Lock()
	defer mu.Unlock()
	if ceiling == 0 {
		ceiling = ephemeralStart()
	}
	if ceiling-lowest < 1000 {
		// The ephemeral range starts low (unusual sysctl): fall back to the
		// kernel's choice.
		return kernelPort()
	}
	for range attempts {
		p := lowest + rand.IntN(ceiling-lowest)
		if given[p] || reserved[p] || !free(p) {
			continue
		}
		given[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("freeport: no free port in %d-%d after %d tries", lowest, ceiling-1, attempts)
}

// Addr returns "127.0.0.1:<port>" for a port from Port.
func Addr() (string, error) {
	p, err := Port()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(Host, strconv.Itoa(p)), nil
}

// Addrs returns n distinct addresses from Addr.
func Addrs(n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		a, err := Addr()
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

func free(p int) bool {
	addr := net.JoinHostPort(Host, strconv.Itoa(p))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}

func kernelPort() (int, error) {
	for range attempts {
		l, err := net.Listen("tcp", Host+":0")
		if err != nil {
			return 0, fmt.Errorf("freeport: %w", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !given[p] && free(p) {
			given[p] = true
			return p, nil
		}
	}
	return 0, fmt.Errorf("freeport: no free port after %d tries", attempts)
}

// ephemeralStart is the first port of the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), 32768 when it cannot be read.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 || n > 65535 {
		return 32768
	}
	return n
}
