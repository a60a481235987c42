package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/shoal-mesh/shoal/sidecar/route"
)

// bodyRecorder is a handler answering 200 that records the bodies it got.
type bodyRecorder struct {
	mu     sync.Mutex
	bodies []string
}

func (br *bodyRecorder) serve(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	br.mu.Lock()
	br.bodies = append(br.bodies, string(b))
	br.mu.Unlock()
	io.WriteString(w, "good")
}

func (br *bodyRecorder) got() []string {
	br.mu.Lock()
	defer br.mu.Unlock()
	return append([]string(nil), br.bodies...)
}

// send sends one request through the proxy; a streamed body has no
// Content-Length. It returns status and X-Backend.
func send(t *testing.T, c *http.Client, proxyAddr, method, body string, streamed bool) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
		if streamed {
			rd = io.MultiReader(rd) // hides the length
		}
	}
	req, err := http.NewRequest(method, "http://"+proxyAddr+"/", rd)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer res.Body.Close()
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		t.Fatalf("read body: %v", err)
	}
	return res.StatusCode, res.Header.Get("X-Backend")
}

// The route's retry policy applies to HTTP2 (h2c) clusters as on the
// HTTP/1.1 path, for h2c clients and for HTTP/1.1 clients alike.
func TestH2CRetryPolicy(t *testing.T) {
	unavailable := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the whole body has passed the proxy
		w.WriteHeader(503)
	}
	resetStream := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		panic(http.ErrAbortHandler) // RST_STREAM before any response
	}
	on5xx := &route.RetryPolicy{On: route.Retry5xx, NumRetries: 2}
	big := strings.Repeat("x", 64<<10)
	tests := []struct {
		name     string
		bad      http.HandlerFunc
		retry    *route.RetryPolicy
		replay   int // Config.ReplayBufferBytes
		method   string
		body     string
		streamed bool
		// wantFail is the status some requests get (0: all succeed on the
		// good endpoint), wantFailFrom its X-Backend ("": a proxy reply).
		wantFail     int
		wantFailFrom string
	}{
		{name: "503 retried under 5xx", bad: unavailable, retry: on5xx, method: "GET"},
		{name: "503 relayed unchanged without a policy", bad: unavailable, method: "GET", wantFail: 503, wantFailFrom: "bad"},
		{name: "503 relayed unchanged when only resets are retried", bad: unavailable, retry: &route.RetryPolicy{On: route.RetryReset}, method: "GET", wantFail: 503, wantFailFrom: "bad"},
		{name: "stream reset retried under reset", bad: resetStream, retry: &route.RetryPolicy{On: route.RetryReset, NumRetries: 1}, method: "POST", body: "payload"},
		{name: "stream reset of a POST is a 502 without a policy", bad: resetStream, method: "POST", body: "payload", wantFail: 502},
		{name: "stream reset of a GET goes to another host without a policy", bad: resetStream, method: "GET"},
		{name: "POST body replayed after a 503", bad: unavailable, retry: on5xx, method: "POST", body: "payload"},
		{name: "streamed body replayed when it fits the replay buffer", bad: unavailable, retry: on5xx, method: "POST", body: "payload", streamed: true},
		{name: "streamed body over the replay buffer is not retried", bad: unavailable, retry: on5xx, replay: 1024, method: "POST", body: big, streamed: true, wantFail: 503, wantFailFrom: "bad"},
	}
	clients := []struct {
		name string
		new  func(*testing.T) *http.Client
	}{{"h2c client", h2cClient}, {"HTTP/1.1 client", client}}
	for _, cl := range clients {
		for _, tc := range tests {
			t.Run(cl.name+": "+tc.name, func(t *testing.T) {
				var rec bodyRecorder
				bad, good := startH2CBackend(t, "bad", tc.bad), startH2CBackend(t, "good", rec.serve)
				p, addr := startProxy(t, Config{ReplayBufferBytes: tc.replay}, Mode{Kind: Outbound})
				p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Protocol: route.HTTP2, Endpoints: endpoints(bad, good),
					Outlier: route.OutlierDetection{Disabled: true}}, route.Route{Retry: tc.retry}))
				c := cl.new(t)
				failed := 0
				for range 10 {
					code, from := send(t, c, addr, tc.method, tc.body, tc.streamed)
					switch {
					case code == 200 && from == "good":
					case tc.wantFail != 0 && code == tc.wantFail && from == tc.wantFailFrom:
						failed++
					default:
						t.Fatalf("got %d from %q, want 200 from good or %d from %q", code, from, tc.wantFail, tc.wantFailFrom)
					}
				}
				if bad.count.Load() == 0 {
					t.Fatal("the failing endpoint was never tried")
				}
				if tc.wantFail != 0 && failed == 0 {
					t.Errorf("no request got %d: the failure was retried", tc.wantFail)
				}
				for _, b := range rec.got() {
					if b != tc.body {
						t.Fatalf("the good endpoint got a body of %d bytes, want %d", len(b), len(tc.body))
					}
				}
			})
		}
	}
}

// blockingH2CBackend answers only when its client goes away.
func blockingH2CBackend(t *testing.T) *backend {
	return startH2CBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
}

// loadedTimeout is a timeout that a backend answering at once meets even
// on a loaded machine (a 2-core CI runner beside other test binaries):
// tests that need a try to end by timeout and the next one to succeed use
// it instead of tens of milliseconds.
const loadedTimeout = 2 * time.Second

func TestH2CTimeouts(t *testing.T) {
	t.Run("per-try timeout goes to another host", func(t *testing.T) {
		slow, fast := blockingH2CBackend(t), startH2CBackend(t, "fast", nil)
		p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
		rt := route.Route{Retry: &route.RetryPolicy{On: route.RetryReset, NumRetries: 1, PerTryTimeout: loadedTimeout}}
		p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Protocol: route.HTTP2, Endpoints: endpoints(slow, fast),
			Outlier: route.OutlierDetection{Disabled: true}}, rt))
		for _, c := range []*http.Client{h2cClient(t), client(t)} {
			// Until a request went to the slow host first (round robin:
			// within two requests), each gets its answer from the fast one.
			before := slow.count.Load()
			for i := 0; slow.count.Load() == before; i++ {
				if i == 4 {
					t.Fatal("no request was tried on the slow host")
				}
				if code, from := send(t, c, addr, "GET", "", false); code != 200 || from != "fast" {
					t.Fatalf("got %d from %q, want 200 from fast", code, from)
				}
			}
		}
	})
	t.Run("route timeout without a per-try timeout is a 504", func(t *testing.T) {
		slow := blockingH2CBackend(t)
		p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
		rt := route.Route{Timeout: 50 * time.Millisecond, Retry: &route.RetryPolicy{On: route.RetryReset, NumRetries: 1}}
		p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Protocol: route.HTTP2, Endpoints: endpoints(slow),
			Outlier: route.OutlierDetection{Disabled: true}}, rt))
		for _, c := range []*http.Client{h2cClient(t), client(t)} {
			for range 2 {
				if code, from := send(t, c, addr, "GET", "", false); code != 504 || from != "" {
					t.Fatalf("got %d from %q, want 504 from the proxy", code, from)
				}
			}
		}
	})
}

// grpcBackend is a grpc-go server that runs one handler for every method,
// unary or streaming, with wrapperspb.BytesValue messages.
type grpcBackend struct {
	addr  string
	calls atomic.Int64
}

func startGRPCBackend(t *testing.T, h func(grpc.ServerStream) error) *grpcBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gb := &grpcBackend{addr: l.Addr().String()}
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, s grpc.ServerStream) error {
		gb.calls.Add(1)
		return h(s)
	}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return gb
}

// receivedBytes reads every message of the call and returns their total
// size.
func receivedBytes(s grpc.ServerStream) (int, error) {
	total := 0
	for {
		var m wrapperspb.BytesValue
		switch err := s.RecvMsg(&m); {
		case errors.Is(err, io.EOF):
			return total, nil
		case err != nil:
			return total, err
		}
		total += len(m.GetValue())
	}
}

// echoSize answers with the number of bytes received, after reading them
// all, and names itself in the x-backend response header.
func echoSize(name string) func(grpc.ServerStream) error {
	return func(s grpc.ServerStream) error {
		n, err := receivedBytes(s)
		if err != nil {
			return err
		}
		s.SetHeader(metadata.Pairs("x-backend", name))
		return s.SendMsg(wrapperspb.Bytes([]byte(strconv.Itoa(n))))
	}
}

// failWith reads the whole call, then fails it with code before sending
// anything: a trailers-only response.
func failWith(code codes.Code, msg string) func(grpc.ServerStream) error {
	return func(s grpc.ServerStream) error {
		if _, err := receivedBytes(s); err != nil {
			return err
		}
		return status.Error(code, msg)
	}
}

// call makes a unary call (messages == 1) or a client-streaming call of
// messages through cc, each of size bytes, and returns the byte count the
// backend reported and its name.
func call(ctx context.Context, cc *grpc.ClientConn, messages, size int) (string, string, error) {
	var md metadata.MD
	var out wrapperspb.BytesValue
	msg := wrapperspb.Bytes([]byte(strings.Repeat("m", size)))
	if messages == 1 {
		err := cc.Invoke(ctx, "/shoal.test.Echo/Unary", msg, &out, grpc.Header(&md))
		return string(out.GetValue()), strings.Join(md.Get("x-backend"), ","), err
	}
	cs, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, "/shoal.test.Echo/Upload", grpc.Header(&md))
	if err != nil {
		return "", "", err
	}
	for range messages {
		if err := cs.SendMsg(msg); err != nil {
			break // the status comes from RecvMsg
		}
	}
	cs.CloseSend()
	err = cs.RecvMsg(&out)
	return string(out.GetValue()), strings.Join(md.Get("x-backend"), ","), err
}

// gRPC retry conditions (Envoy's x-envoy-retry-grpc-on) retry a
// trailers-only response by its grpc-status; anything else reaches the
// client unchanged.
func TestGRPCRetryPolicy(t *testing.T) {
	onUnavailable := &route.RetryPolicy{On: route.RetryGRPCUnavailable, NumRetries: 2}
	tests := []struct {
		name     string
		retry    *route.RetryPolicy
		replay   int // Config.ReplayBufferBytes
		messages int // 1: unary
		size     int
		bothFail bool
		wantFail bool // some calls fail with the backend's own status
	}{
		{name: "unary UNAVAILABLE retried under unavailable", retry: onUnavailable, messages: 1, size: 100},
		{name: "unary UNAVAILABLE relayed without a policy", messages: 1, size: 100, wantFail: true},
		{name: "unary UNAVAILABLE relayed when only internal is retried", retry: &route.RetryPolicy{On: route.RetryGRPCInternal | route.Retry5xx, NumRetries: 2}, messages: 1, size: 100, wantFail: true},
		{name: "client stream within the replay buffer is retried", retry: onUnavailable, messages: 3, size: 100},
		{name: "client stream over the replay buffer is streamed without retries", retry: onUnavailable, replay: 1024, messages: 4, size: 1024, wantFail: true},
		{name: "every endpoint UNAVAILABLE: each tried once, the last status relayed", retry: &route.RetryPolicy{On: route.RetryGRPCUnavailable, NumRetries: 5}, messages: 1, size: 100, bothFail: true, wantFail: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := startGRPCBackend(t, failWith(codes.Unavailable, "bad is draining"))
			good := startGRPCBackend(t, echoSize("good"))
			if tc.bothFail {
				good = startGRPCBackend(t, failWith(codes.Unavailable, "bad is draining"))
			}
			p, addr := startProxy(t, Config{ReplayBufferBytes: tc.replay}, Mode{Kind: Outbound})
			p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "grpc", Protocol: route.HTTP2,
				Endpoints: []route.Endpoint{{Address: bad.addr, Healthy: true}, {Address: good.addr, Healthy: true}},
				Outlier:   route.OutlierDetection{Disabled: true},
			}, route.Route{Retry: tc.retry}))
			cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
			defer cancel()
			const calls = 10
			failed := 0
			for range calls {
				got, from, err := call(ctx, cc, tc.messages, tc.size)
				switch st := status.Convert(err); {
				case err == nil && from == "good" && got == strconv.Itoa(tc.messages*tc.size):
				case tc.wantFail && st.Code() == codes.Unavailable && st.Message() == "bad is draining":
					failed++
				default:
					t.Fatalf("call = %q from %q, %v; want %d bytes from good or the backend's UNAVAILABLE", got, from, err, tc.messages*tc.size)
				}
			}
			if bad.calls.Load() == 0 {
				t.Fatal("the failing endpoint was never tried")
			}
			if tc.wantFail && failed == 0 {
				t.Error("no call failed: the failure was retried")
			}
			if tc.bothFail && (failed != calls || bad.calls.Load() != calls || good.calls.Load() != calls) {
				t.Errorf("%d calls failed, endpoints called %d and %d times; want every call failed after one attempt on each",
					failed, bad.calls.Load(), good.calls.Load())
			}
		})
	}
}

// A gRPC backend that answers every call UNAVAILABLE (trailers-only, HTTP
// 200) is ejected by outlier detection like one answering 503, as in
// Envoy, so calls stop reaching it even without a retry policy.
func TestGRPCUnavailableCountsForOutlierDetection(t *testing.T) {
	bad := startGRPCBackend(t, failWith(codes.Unavailable, "bad is draining"))
	good := startGRPCBackend(t, echoSize("good"))
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "grpc", Protocol: route.HTTP2,
		Endpoints: []route.Endpoint{{Address: bad.addr, Healthy: true}, {Address: good.addr, Healthy: true}},
		Outlier:   route.OutlierDetection{Consecutive5xx: 3, BaseEjectionTime: time.Minute},
	}, route.Route{}))
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), defaultTestTimeout)
	defer cancel()
	// Round robin: the bad endpoint gets every other call until ejected.
	for range 10 {
		call(ctx, cc, 1, 10)
	}
	if n := bad.calls.Load(); n != 3 {
		t.Fatalf("the UNAVAILABLE endpoint got %d calls, want exactly 3 (ejected after 3 consecutive)", n)
	}
	for i := range 20 {
		if _, from, err := call(ctx, cc, 1, 10); err != nil || from != "good" {
			t.Fatalf("call %d after the ejection: from %q, %v; want good", i, from, err)
		}
	}
}
