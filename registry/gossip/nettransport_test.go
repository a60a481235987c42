package gossip

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNetTransportPackets: packets arrive whole, each in its own
// exact-size buffer (memberlist may keep them), with the sender's address;
// TCP and UDP share the port picked for port 0.
func TestNetTransportPackets(t *testing.T) {
	tr, err := newNetTransport("127.0.0.1", 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tr.port()))
	if u := tr.udp.LocalAddr().(*net.UDPAddr).Port; u != tr.port() {
		t.Fatalf("UDP on %d, TCP on %d; want one port", u, tr.port())
	}
	src, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var got [][]byte
	for i := range 50 {
		msg := bytes.Repeat([]byte{byte(i)}, 1+i*37)
		if _, err := src.WriteTo(msg, tr.udp.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-tr.PacketCh():
			if !bytes.Equal(p.Buf, msg) || cap(p.Buf) > 2*len(msg)+16 {
				t.Fatalf("packet %d: %d bytes (cap %d), want %d in a buffer its size (not a 64 KiB one)", i, len(p.Buf), cap(p.Buf), len(msg))
			}
			if p.From.String() != src.LocalAddr().String() {
				t.Errorf("packet from %s, want %s", p.From, src.LocalAddr())
			}
			got = append(got, p.Buf)
		case <-time.After(10 * time.Second):
			t.Fatalf("packet %d not delivered", i)
		}
	}
	// Earlier packets were not overwritten by later reads.
	for i, b := range got {
		if b[0] != byte(i) {
			t.Fatalf("packet %d changed after delivery", i)
		}
	}
	// WriteTo reaches a UDP peer; DialTimeout and StreamCh carry streams.
	if _, err := tr.WriteTo([]byte("ping"), src.LocalAddr().String()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	src.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, _, err := src.ReadFrom(buf); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("WriteTo: got %q, %v", buf[:n], err)
	}
	c, err := tr.DialTimeout(addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "stream")
	select {
	case s := <-tr.StreamCh():
		defer s.Close()
		b := make([]byte, 6)
		if _, err := io.ReadFull(s, b); err != nil || string(b) != "stream" {
			t.Fatalf("stream: %q, %v", b, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream not delivered")
	}
}

// TestNetTransportShutdownWithUnreadPacket: Shutdown returns while a
// packet waits for a reader that is gone.
func TestNetTransportShutdownWithUnreadPacket(t *testing.T) {
	tr, err := newNetTransport("127.0.0.1", 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp", tr.udp.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("nobody reads this"))
	done := make(chan struct{})
	go func() { tr.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown blocked")
	}
	if err := tr.Shutdown(); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

func TestNetTransportAdvertiseAddr(t *testing.T) {
	tr, err := newNetTransport("127.0.0.1", 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown()
	ip, port, err := tr.FinalAdvertiseAddr("", 0)
	if err != nil || !ip.Equal(net.IPv4(127, 0, 0, 1)) || port != tr.port() || len(ip) != 4 {
		t.Errorf("bound address: %v:%d, %v; want 127.0.0.1:%d (4-byte IP)", ip, port, err, tr.port())
	}
	ip, port, err = tr.FinalAdvertiseAddr("10.1.2.3", 7946)
	if err != nil || !ip.Equal(net.IPv4(10, 1, 2, 3)) || port != 7946 {
		t.Errorf("given address: %v:%d, %v", ip, port, err)
	}
	if _, _, err := tr.FinalAdvertiseAddr("not-an-ip", 1); err == nil {
		t.Error("a bad advertise address was accepted")
	}
}

func TestParseKeys(t *testing.T) {
	k1 := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
	k2 := "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY="
	for _, tc := range []struct {
		in      string
		n       int
		wantErr string
	}{
		{"", 0, ""},
		{k1, 1, ""},
		{k1 + "," + k2, 2, ""},
		{" " + k1 + "\n" + k2 + "\n", 2, ""},
		{k1 + "," + k1, 0, "given twice"},
		{k1 + ",c2hvcnQ=", 0, "gossip key 2: want 32 bytes"},
		{"not base64!", 0, "gossip key 1"},
	} {
		keys, err := ParseKeys(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseKeys(%q) = %v, want an error containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(keys) != tc.n {
			t.Errorf("ParseKeys(%q) = %d keys, %v; want %d", tc.in, len(keys), err, tc.n)
		}
	}
}
