package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// refusingH2Backend is an h2c server that never processes a stream: it
// answers each one with RST_STREAM(REFUSED_STREAM), or with a GOAWAY that
// excludes it (last stream 0), as a draining server does.
type refusingH2Backend struct {
	*acceptLoop
	streams atomic.Int64
}

func startRefusingH2Backend(t *testing.T, goAway bool) *refusingH2Backend {
	rb := &refusingH2Backend{}
	rb.acceptLoop = startAcceptLoop(t, func(c net.Conn) {
		defer c.Close()
		pre := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(c, pre); err != nil {
			return
		}
		fr := http2.NewFramer(c, c)
		fr.WriteSettings()
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
				rb.streams.Add(1)
				if goAway {
					fr.WriteGoAway(0, http2.ErrCodeNo, nil)
					return // a draining server closes once its streams are done
				}
				fr.WriteRSTStream(f.StreamID, http2.ErrCodeRefusedStream)
			}
		}
	})
	return rb
}

func (rb *refusingH2Backend) endpoint() route.Endpoint {
	return route.Endpoint{Address: rb.l.Addr().String(), Healthy: true}
}

// A stream the upstream did not process (REFUSED_STREAM, or beyond a
// GOAWAY's last stream) is sent to another endpoint even without a retry
// policy and for a POST: it is known not to have been processed (RFC 9113
// 8.7). A GOAWAY also retires its connection.
func TestH2RefusedStreamsGoToAnotherEndpoint(t *testing.T) {
	for _, goAway := range []bool{false, true} {
		name := "REFUSED_STREAM"
		if goAway {
			name = "GOAWAY"
		}
		t.Run(name, func(t *testing.T) {
			bad, good := startRefusingH2Backend(t, goAway), startH2CBackend(t, "good", nil)
			p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
			p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Protocol: route.HTTP2,
				Endpoints: append(endpoints(good), bad.endpoint()), Outlier: route.OutlierDetection{Disabled: true}}, route.Route{}))
			c := h2cClient(t)
			for range 10 {
				if code, from := send(t, c, addr, "POST", "payload", false); code != 200 || from != "good" {
					t.Fatalf("POST = %d from %q, want 200 from good", code, from)
				}
			}
			if bad.streams.Load() == 0 {
				t.Fatal("the refusing endpoint was never tried")
			}
		})
	}
}

// An h2c connection must send its first request within ReadHeaderTimeout,
// as an HTTP/1 request head must (slowloris).
func TestH2FirstHeadersTimeout(t *testing.T) {
	_, addr := startProxy(t, Config{ReadHeaderTimeout: 50 * time.Millisecond}, Mode{Kind: Outbound})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	c.SetReadDeadline(time.Now().Add(defaultTestTimeout))
	var goAway *http2.GoAwayFrame
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
				break
			}
			t.Fatalf("read: %v; want the proxy to close the idle connection", err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			goAway = g
		}
	}
	if goAway == nil {
		t.Error("the connection closed without a GOAWAY")
	}
}

// Bodies far larger than the stream and connection windows stream both
// ways through the frame-level path (a bidirectional gRPC call echoing
// every message), with flow control granting window only as bytes move on.
func TestH2LargeBidiStream(t *testing.T) {
	be := startGRPCBackend(t, func(s grpc.ServerStream) error {
		for {
			var m wrapperspb.BytesValue
			if err := s.RecvMsg(&m); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
			if err := s.SendMsg(&m); err != nil {
				return err
			}
		}
	})
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "grpc", Protocol: route.HTTP2,
		Endpoints: []route.Endpoint{{Address: be.addr, Healthy: true}}}, route.Route{}))
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()
	cs, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/shoal.test.Echo/Bidi")
	if err != nil {
		t.Fatal(err)
	}
	const messages, size = 64, 256 << 10 // 16 MiB each way
	sendErr := make(chan error, 1)
	go func() {
		msg := wrapperspb.Bytes(bytes.Repeat([]byte{'b'}, size))
		for range messages {
			if err := cs.SendMsg(msg); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- cs.CloseSend()
	}()
	got := 0
	for {
		var m wrapperspb.BytesValue
		err := cs.RecvMsg(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d messages: %v", got, err)
		}
		if len(m.GetValue()) != size {
			t.Fatalf("message %d has %d bytes, want %d", got, len(m.GetValue()), size)
		}
		got++
	}
	if err := <-sendErr; err != nil {
		t.Fatalf("send: %v", err)
	}
	if got != messages {
		t.Fatalf("got %d messages back, want %d", got, messages)
	}
}

// The upstream request carries the HTTP/1 path's forwarding headers, and
// a response trailer reaches the client.
func TestH2ForwardedHeaders(t *testing.T) {
	var seen atomic.Pointer[string]
	be := startGRPCBackend(t, func(s grpc.ServerStream) error {
		var m wrapperspb.BytesValue
		if err := s.RecvMsg(&m); err != nil {
			return err
		}
		md, _ := metadata.FromIncomingContext(s.Context())
		v := strings.Join(md["x-forwarded-for"], ",") + "|" + strings.Join(md["x-forwarded-proto"], ",") + "|" + strings.Join(md["x-request-id"], ",")
		seen.Store(&v)
		return s.SendMsg(&m)
	})
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "grpc", Protocol: route.HTTP2,
		Endpoints: []route.Endpoint{{Address: be.addr, Healthy: true}}}, route.Route{}))
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()
	if _, _, err := call(ctx, cc, 1, 10); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(*seen.Load(), "|")
	if parts[0] != "127.0.0.1" || parts[1] != "http" || len(parts[2]) != 36 {
		t.Errorf("x-forwarded-for|proto|request-id = %q, want 127.0.0.1|http|<uuid>", *seen.Load())
	}
}

// On the frame-level path too the route timeout runs from the end of the
// request to the response headers: a paced upload and a paced download
// lasting several route timeouts complete, a hung upstream gets 504.
func TestH2RouteTimeoutEndsWithTheResponseHeaders(t *testing.T) {
	be := startH2CBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload":
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				w.WriteHeader(400)
				return
			}
			fmt.Fprint(w, n)
		case "/download":
			rc := http.NewResponseController(w)
			tick := time.NewTicker(pace)
			defer tick.Stop()
			for range pieces {
				w.Write(bytes.Repeat([]byte("d"), 1000))
				if rc.Flush() != nil {
					return
				}
				<-tick.C
			}
		case "/hang":
			<-r.Context().Done()
		}
	})
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Protocol: route.HTTP2, Endpoints: endpoints(be)},
		route.Route{Timeout: routeTimeout}))
	c := h2cClient(t)
	t.Run("paced upload", func(t *testing.T) {
		req, _ := http.NewRequest("POST", "http://"+addr+"/upload", newPacedReader(t, 1000))
		req.Host = "a"
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		got, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || string(got) != strconv.Itoa(pieces*1000) {
			t.Errorf("got %d %q, want 200 %d", res.StatusCode, got, pieces*1000)
		}
	})
	t.Run("paced download", func(t *testing.T) {
		if code, _, body := get(t, c, addr, "a", "/download"); code != 200 || len(body) != pieces*1000 {
			t.Errorf("got %d and %d bytes, want 200 and %d", code, len(body), pieces*1000)
		}
	})
	t.Run("hung upstream", func(t *testing.T) {
		if code, _, _ := get(t, c, addr, "a", "/hang"); code != 504 {
			t.Errorf("got %d, want 504", code)
		}
	})
}

// With no route timeout the stream idle timeout ends the wait for an
// upstream that never answers, and cuts a response that stalls.
func TestH2StreamIdleTimeout(t *testing.T) {
	be := startH2CBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stall" {
			w.WriteHeader(200)
			http.NewResponseController(w).Flush()
		}
		<-r.Context().Done()
	})
	p, addr := startProxy(t, Config{StreamIdleTimeout: routeTimeout}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Protocol: route.HTTP2, Endpoints: endpoints(be)}, route.Route{}))
	c := h2cClient(t)
	if code, _, _ := get(t, c, addr, "a", "/hang"); code != 504 {
		t.Errorf("hung upstream: %d, want 504", code)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/stall", nil)
	req.Host = "a"
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if _, err := io.ReadAll(res.Body); err == nil {
		t.Error("a stalled response body ended without an error, want the stream reset")
	}
}
