package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
)

// Socket sizes, as memberlist's NetTransport uses them.
const (
	maxPacket      = 65536           // the largest UDP payload read
	udpRecvBufSize = 2 * 1024 * 1024 // asked of the kernel, halved until it agrees
)

// netTransport is memberlist's transport over one TCP listener (streams:
// push/pull, fallback probes) and one UDP socket (packets) on the same
// address and port. It does what memberlist's NetTransport does, without
// its allocation per received packet: NetTransport reads every packet into
// a fresh 64 KiB buffer, which made an idle sidecar's gossip allocate
// about 1 MiB a second (a garbage collection every second or so, on the
// core that proxies). Here packets are read into one buffer and handed on
// as exact-size copies — pings and acks are ~100 bytes.
type netTransport struct {
	bindAddr string
	tcp      *net.TCPListener
	udp      *net.UDPConn
	log      *slog.Logger

	packetCh chan *memberlist.Packet
	streamCh chan net.Conn

	shutdown atomic.Bool
	stop     chan struct{} // closed by Shutdown: pending hand-offs give up
	wg       sync.WaitGroup
}

var _ memberlist.Transport = (*netTransport)(nil)

// newNetTransport binds TCP and UDP on addr:port. Port 0 picks a port free
// for both (a few tries: the kernel's TCP choice may be taken for UDP).
func newNetTransport(addr string, port int, log *slog.Logger) (*netTransport, error) {
	ip := net.ParseIP(addr)
	if ip == nil {
		return nil, fmt.Errorf("gossip: bind address %q is not an IP", addr)
	}
	tries := 1
	if port == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var tl *net.TCPListener
		if tl, err = net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port}); err != nil {
			continue
		}
		p := tl.Addr().(*net.TCPAddr).Port
		var ul *net.UDPConn
		if ul, err = net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: p}); err != nil {
			tl.Close()
			continue
		}
		for size := udpRecvBufSize; size > 0; size /= 2 {
			if ul.SetReadBuffer(size) == nil {
				break
			}
		}
		t := &netTransport{
			bindAddr: addr, tcp: tl, udp: ul, log: log,
			packetCh: make(chan *memberlist.Packet),
			streamCh: make(chan net.Conn),
			stop:     make(chan struct{}),
		}
		t.wg.Add(2)
		go t.acceptStreams()
		go t.readPackets()
		return t, nil
	}
	return nil, err
}

// port is the bound port (TCP and UDP).
func (t *netTransport) port() int { return t.tcp.Addr().(*net.TCPAddr).Port }

// FinalAdvertiseAddr implements memberlist.Transport: the given address,
// else the bound one, else (bound to 0.0.0.0) a private IP of this host.
func (t *netTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		a := net.ParseIP(ip)
		if a == nil {
			return nil, 0, fmt.Errorf("gossip: advertise address %q is not an IP", ip)
		}
		if a4 := a.To4(); a4 != nil {
			a = a4
		}
		return a, port, nil
	}
	a := t.tcp.Addr().(*net.TCPAddr).IP
	if a.IsUnspecified() {
		priv, err := sockaddr.GetPrivateIP()
		if err != nil {
			return nil, 0, fmt.Errorf("gossip: interface addresses: %w", err)
		}
		if priv == "" {
			return nil, 0, errors.New("gossip: bound to all interfaces and no private IP found: give an advertise address")
		}
		a = net.ParseIP(priv)
	}
	if a4 := a.To4(); a4 != nil {
		a = a4
	}
	return a, t.port(), nil
}

// WriteTo implements memberlist.Transport.
func (t *netTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	ua, err := resolveUDP(addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteToUDPAddrPort(b, ua)
	return time.Now(), err
}

// resolveUDP parses "ip:port" without a lookup (memberlist's addresses
// are IPs), and resolves names otherwise.
func resolveUDP(addr string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap, nil
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return ua.AddrPort(), nil
}

// PacketCh implements memberlist.Transport.
func (t *netTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout implements memberlist.Transport.
func (t *netTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", addr)
}

// StreamCh implements memberlist.Transport.
func (t *netTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown implements memberlist.Transport: it closes both sockets and
// waits for the reading goroutines.
func (t *netTransport) Shutdown() error {
	if t.shutdown.Swap(true) {
		return nil
	}
	close(t.stop)
	t.tcp.Close()
	t.udp.Close()
	t.wg.Wait()
	return nil
}

// acceptStreams hands accepted TCP connections to memberlist, backing off
// on accept errors (fd exhaustion) as net/http does.
func (t *netTransport) acceptStreams() {
	defer t.wg.Done()
	var backoff time.Duration
	for {
		c, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.shutdown.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t.log.Warn("gossip: accepting a stream", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-t.stop:
				return
			}
			continue
		}
		backoff = 0
		select {
		case t.streamCh <- c:
		case <-t.stop:
			c.Close()
			return
		}
	}
}

// readPackets hands received UDP packets to memberlist, each as an
// exact-size copy read through one buffer.
func (t *netTransport) readPackets() {
	defer t.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, from, err := t.udp.ReadFromUDPAddrPort(buf)
		ts := time.Now()
		if err != nil {
			if t.shutdown.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			t.log.Warn("gossip: reading a packet", "err", err)
			continue
		}
		if n < 1 {
			continue // memberlist needs at least a message type
		}
		p := &memberlist.Packet{
			Buf:       append([]byte(nil), buf[:n]...),
			From:      net.UDPAddrFromAddrPort(netip.AddrPortFrom(from.Addr().Unmap(), from.Port())),
			Timestamp: ts,
		}
		select {
		case t.packetCh <- p:
		case <-t.stop:
			return
		}
	}
}
