package h2

import (
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

const testTimeout = 20 * time.Second

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rawServer is an h2c server built on the Framer that advertises
// maxStreams and never answers; it counts connections and streams, and
// answers the first stream of each connection with a GOAWAY when goAway
// is set.
type rawServer struct {
	l              net.Listener
	maxStreams     uint32
	goAway         bool
	conns, streams atomic.Int64
	wg             sync.WaitGroup
	mu             sync.Mutex
	open           []net.Conn
}

func startRawServer(t *testing.T, maxStreams uint32, goAway bool) *rawServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{l: l, maxStreams: maxStreams, goAway: goAway}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.mu.Lock()
			s.open = append(s.open, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		s.mu.Lock()
		for _, c := range s.open {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) serve(c net.Conn) {
	pre := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, pre); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: s.maxStreams})
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			s.streams.Add(1)
			if s.goAway {
				fr.WriteGoAway(0, http2.ErrCodeNo, nil)
			}
		}
	}
}

// recorder is a Receiver that records resets.
type recorder struct {
	mu     sync.Mutex
	resets []error
}

func (r *recorder) OnResponse(*ClientStream, int, []hpack.HeaderField, bool) {}
func (r *recorder) OnData(*ClientStream, []byte, bool)                       {}
func (r *recorder) OnTrailers(*ClientStream, []hpack.HeaderField)            {}
func (r *recorder) OnWritable(*ClientStream)                                 {}
func (r *recorder) OnReset(_ *ClientStream, err error) {
	r.mu.Lock()
	r.resets = append(r.resets, err)
	r.mu.Unlock()
}

func (r *recorder) got() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.resets...)
}

var request = []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
	{Name: ":authority", Value: "a"}, {Name: ":path", Value: "/"}}

// dial waits for a connection of p (a new one when none has room).
func dial(t *testing.T, p *Pool) *ClientConn {
	t.Helper()
	got := make(chan *ClientConn, 1)
	errc := make(chan error, 1)
	if err := p.Wait(testTimeout, func(cc *ClientConn, err error) {
		if err != nil {
			errc <- err
			return
		}
		got <- cc
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case cc := <-got:
		return cc
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(testTimeout):
		t.Fatal("no connection")
	}
	return nil
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // poll interval of a loop with a deadline
	}
}

// A connection takes streams up to the upstream's
// SETTINGS_MAX_CONCURRENT_STREAMS; then the pool opens another.
func TestPoolMultiplexesUpToMaxConcurrentStreams(t *testing.T) {
	s := startRawServer(t, 2, false)
	p := NewPool(s.l.Addr().String(), PoolConfig{})
	defer p.Join()
	defer p.Close()
	cc := dial(t, p)
	eventually(t, "the upstream's settings", func() bool {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		return cc.maxStreams == 2
	})
	var r recorder
	for i := range 2 {
		if _, ok := cc.NewStream(request, true, &r); !ok {
			t.Fatalf("stream %d refused by a connection with room", i+1)
		}
	}
	if _, ok := cc.NewStream(request, true, &r); ok {
		t.Fatal("a third stream went on a connection that allows 2")
	}
	if p.Get() != nil {
		t.Fatal("Get returned a full connection")
	}
	cc2 := dial(t, p)
	if cc2 == cc {
		t.Fatal("Wait returned the full connection")
	}
	if _, ok := cc2.NewStream(request, true, &r); !ok {
		t.Fatal("the new connection refused a stream")
	}
	eventually(t, "3 streams on 2 connections", func() bool { return s.streams.Load() == 3 && s.conns.Load() == 2 })
}

// A GOAWAY refuses the streams above its last stream (ErrRefused: safe to
// send elsewhere) and retires the connection.
func TestGoAwayRefusesStreamsAndRetiresTheConnection(t *testing.T) {
	s := startRawServer(t, 100, true)
	p := NewPool(s.l.Addr().String(), PoolConfig{})
	defer p.Join()
	defer p.Close()
	cc := dial(t, p)
	var r recorder
	if _, ok := cc.NewStream(request, true, &r); !ok {
		t.Fatal("stream refused")
	}
	eventually(t, "the stream to be refused", func() bool { return len(r.got()) == 1 })
	if err := r.got()[0]; err != ErrRefused {
		t.Fatalf("OnReset(%v), want ErrRefused", err)
	}
	if _, ok := cc.NewStream(request, true, &r); ok {
		t.Fatal("a connection that got GOAWAY took a new stream")
	}
	if p.Get() != nil {
		t.Fatal("the pool offers a connection that got GOAWAY")
	}
}

// Drain retires the pool's connections (an endpoint that switched to
// mTLS): the next stream goes on a new connection.
func TestDrainRetiresConnections(t *testing.T) {
	s := startRawServer(t, 100, false)
	p := NewPool(s.l.Addr().String(), PoolConfig{})
	defer p.Join()
	defer p.Close()
	cc := dial(t, p)
	p.Drain()
	var r recorder
	if _, ok := cc.NewStream(request, true, &r); ok {
		t.Fatal("a drained connection took a stream")
	}
	if p.Get() != nil {
		t.Fatal("the pool offers a drained connection")
	}
	if cc2 := dial(t, p); cc2 == cc {
		t.Fatal("Wait returned the drained connection")
	}
	eventually(t, "a second connection", func() bool { return s.conns.Load() == 2 })
}

type noStreams struct{}

func (noStreams) ServeStream(s *Stream) { s.Reset(http2.ErrCodeRefusedStream) }

// A client's GOAWAY with more frames behind it than the server reads at
// once (h2spec 3.8.1 sends a PING right after its GOAWAY): the server
// answers with its own GOAWAY and ends the connection with a FIN, not a
// reset that could destroy that GOAWAY in the client's receive buffer, so
// the client reads the GOAWAY and then the end of the stream.
func TestServerEndsWithoutResetAfterClientGoAway(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		nc, err := l.Accept()
		if err != nil {
			return
		}
		pre := make([]byte, len(http2.ClientPreface)-len(clientPrefaceTail))
		if _, err := io.ReadFull(nc, pre); err != nil {
			nc.Close()
			return
		}
		NewServerConn(nc, nil, ServerConfig{}, noStreams{}).Serve()
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	var out bytes.Buffer
	out.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&out, nil)
	fr.WriteSettings()
	fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	for i := 0; i < 20000; i++ { // 340 KB: many reads' worth
		fr.WritePing(false, [8]byte{})
	}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		c.Write(out.Bytes()) // fails if the server resets
	}()
	in := http2.NewFramer(nil, c)
	sawGoAway := false
	for {
		f, err := in.ReadFrame()
		if err != nil {
			if err != io.EOF {
				t.Errorf("read after the server's GOAWAY (seen: %v): %v, want EOF", sawGoAway, err)
			}
			break
		}
		if _, ok := f.(*http2.GoAwayFrame); ok {
			sawGoAway = true
		}
	}
	if !sawGoAway {
		t.Error("the server did not answer the GOAWAY with its own")
	}
	c.Close()
	<-wrote
	<-served
}

// SetReceiver hands a stream waiting for its answer to another Receiver:
// its end goes to that one only, and a stream that ended stays with its
// receiver.
func TestSetReceiverHandsTheStreamOver(t *testing.T) {
	s := startRawServer(t, 100, false)
	p := NewPool(s.l.Addr().String(), PoolConfig{})
	defer p.Join()
	cc := dial(t, p)
	var first, second recorder
	cs, ok := cc.NewStream(request, true, &first)
	if !ok {
		t.Fatal("the connection refused a stream")
	}
	if !cs.SetReceiver(&second) {
		t.Fatal("SetReceiver refused a stream waiting for its answer")
	}
	p.Close()
	eventually(t, "the stream's end", func() bool { return len(second.got()) == 1 })
	if got := second.got(); got[0] != ErrConnClosed {
		t.Errorf("the new receiver got %v, want %v", got[0], ErrConnClosed)
	}
	if got := first.got(); len(got) != 0 {
		t.Errorf("the former receiver got %v, want nothing", got)
	}
	if cs.SetReceiver(&first) {
		t.Error("SetReceiver took a stream that ended")
	}
}
