package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPortsAreDistinctBindableAndOutsideTheEphemeralRange(t *testing.T) {
	seen := map[int]bool{}
	for range 300 {
		p, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if p < lowest || p >= ephemeralStart() || reserved[p] {
			t.Fatalf("port %d outside [%d, %d) or reserved", p, lowest, ephemeralStart())
		}
	}
	// The ports are usable for TCP and UDP by whoever they are given to.
	for p := range seen {
		addr := net.JoinHostPort(Host, strconv.Itoa(p))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("tcp %s: %v", addr, err)
		}
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			l.Close()
			t.Fatalf("udp %s: %v", addr, err)
		}
		l.Close()
		u.Close()
		break
	}
}

func TestFreeSeesABoundPort(t *testing.T) {
	// Hold most of a small window and check that Port never returns a held
	// port: free() must see them as taken.
	held := map[int]net.Listener{}
	for p := lowest; p < lowest+50; p++ {
		if l, err := net.Listen("tcp", net.JoinHostPort(Host, strconv.Itoa(p))); err == nil {
			held[p] = l
		}
	}
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for p := range held {
		if free(p) {
			t.Fatalf("free(%d) = true while a listener holds it", p)
		}
	}
}

func TestAddrs(t *testing.T) {
	as, err := Addrs(6)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range as {
		if seen[a] {
			t.Fatalf("duplicate %s in %v", a, as)
		}
		seen[a] = true
		if h, _, _ := net.SplitHostPort(a); h != Host {
			t.Fatalf("addr %s not on %s", a, Host)
		}
	}
}
