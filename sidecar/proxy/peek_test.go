package proxy

import (
	"net"
	"testing"
	"time"
)

// An idle connection the upstream closed (a kill -9, a keep-alive timeout)
// is not handed out again: a POST written to it would fail as if it had
// been in flight on the upstream, and could not be retried.
func TestPoolSkipsConnectionsThePeerClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dial := func() (*upConn, net.Conn) {
		t.Helper()
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		peer, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return newUpConn(nc, nil, 0), peer
	}
	alive, alivePeer := dial()
	defer alive.close()
	defer alivePeer.Close()
	dead, deadPeer := dial()
	defer dead.close()
	deadPeer.Close()
	for deadline := time.Now().Add(5 * time.Second); !dead.peerClosed(); {
		if time.Now().After(deadline) {
			t.Fatal("peerClosed never saw the peer's FIN")
		}
		time.Sleep(time.Millisecond) // the FIN crosses loopback asynchronously
	}
	if alive.peerClosed() {
		t.Fatal("peerClosed = true for an open idle connection")
	}

	var p pool
	now := time.Now()
	p.put(alive, now, 4)
	p.put(dead, now, 4) // most recent: get tries it first
	if got := p.get(now, time.Minute, true); got != alive {
		t.Errorf("get returned %p, want the open connection %p (the closed one is %p)", got, alive, dead)
	}
	if got := p.get(now, time.Minute, true); got != nil {
		t.Errorf("second get returned %p, want nil", got)
	}
}
