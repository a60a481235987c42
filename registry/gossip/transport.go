package gossip

import (
	"crypto/cipher"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// observer receives the membership messages the tap reads off the wire.
// It is called on transport goroutines and must not block.
type observer func(msgs []wireMsg)

// tapTransport wraps the transport (netTransport) to observe the suspect and
// alive messages crossing it, in both directions. memberlist reports joins,
// leaves and metadata updates through its EventDelegate but never reports
// suspicion or its refutation (Node.State is not maintained either:
// hashicorp/memberlist#266), so the tap is how suspicion becomes visible
// within one gossip round instead of after the suspicion timeout.
//
// The tap only reads: every packet is passed on unchanged. It also carries a
// test hook that blackholes the member for a while (a stand-in for a paused
// process).
type tapTransport struct {
	*netTransport
	label   string
	keys    func() [][]byte // the keyring's current keys; nil without encryption
	observe observer
	onErr   func(error)
	// aeads caches an AEAD per key for tap.
	aeads aeadCache

	// packetCh carries inbound packets to memberlist after the tap saw them.
	packetCh chan *memberlist.Packet
	// streamCh carries inbound streams to memberlist (filtered while blackholed).
	streamCh chan net.Conn
	// stop is closed by Shutdown to end the forwarding goroutines.
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	// blackholeUntil, in UnixNano, drops all traffic until then (tests).
	blackholeUntil atomic.Int64
}

var _ memberlist.NodeAwareTransport = (*tapTransport)(nil)

var errBlackholed = errors.New("gossip: transport blackholed")

func newTapTransport(nt *netTransport, label string, keys func() [][]byte, obs observer, onErr func(error)) *tapTransport {
	t := &tapTransport{
		netTransport: nt,
		label:        label,
		keys:         keys,
		observe:      obs,
		onErr:        onErr,
		packetCh:     make(chan *memberlist.Packet),
		streamCh:     make(chan net.Conn),
		stop:         make(chan struct{}),
	}
	t.wg.Add(2)
	go t.forwardPackets()
	go t.forwardStreams()
	return t
}

// PacketCh implements memberlist.Transport.
func (t *tapTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// StreamCh implements memberlist.Transport.
func (t *tapTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// WriteTo implements memberlist.Transport.
func (t *tapTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.tap(b) // before the blackhole: the packet is sent, then lost on the wire
	if t.blackholed() {
		return time.Now(), nil
	}
	return t.netTransport.WriteTo(b, addr)
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *tapTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

// DialTimeout implements memberlist.Transport.
func (t *tapTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.blackholed() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errBlackholed}
	}
	return t.netTransport.DialTimeout(addr, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *tapTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// Shutdown implements memberlist.Transport: it closes the sockets, then
// stops and waits for the forwarding goroutines. Safe to call twice.
func (t *tapTransport) Shutdown() error {
	err := t.netTransport.Shutdown()
	t.once.Do(func() { close(t.stop) })
	t.wg.Wait()
	return err
}

// blackhole drops every packet and stream, both ways, for d (tests).
func (t *tapTransport) blackhole(d time.Duration) {
	t.blackholeUntil.Store(time.Now().Add(d).UnixNano())
}

func (t *tapTransport) blackholed() bool {
	return time.Now().UnixNano() < t.blackholeUntil.Load()
}

func (t *tapTransport) tap(pkt []byte) {
	var aeads []cipher.AEAD
	if t.keys != nil {
		aeads = t.aeads.get(t.keys())
	}
	msgs, err := decodePacket(pkt, t.label, aeads)
	if err != nil {
		t.onErr(err)
	}
	if len(msgs) > 0 {
		t.observe(msgs)
	}
}

// forwardPackets owns the inbound packet path: tap, then hand to memberlist.
func (t *tapTransport) forwardPackets() {
	defer t.wg.Done()
	in := t.netTransport.PacketCh()
	for {
		select {
		case p := <-in:
			if t.blackholed() {
				continue
			}
			t.tap(p.Buf)
			select {
			case t.packetCh <- p:
			case <-t.stop:
				return
			}
		case <-t.stop:
			return
		}
	}
}

// forwardStreams owns the inbound stream path.
func (t *tapTransport) forwardStreams() {
	defer t.wg.Done()
	in := t.netTransport.StreamCh()
	for {
		select {
		case c := <-in:
			if t.blackholed() {
				_ = c.Close()
				continue
			}
			select {
			case t.streamCh <- c:
			case <-t.stop:
				_ = c.Close()
				return
			}
		case <-t.stop:
			return
		}
	}
}
