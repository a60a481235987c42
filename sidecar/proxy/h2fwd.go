package proxy

import (
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/shoal-mesh/shoal/sidecar/accesslog"
	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/proxy/h2"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// h2Fwd forwards one downstream h2c stream to an HTTP2 cluster frame by
// frame, with no goroutine of its own: its methods run on the goroutines
// of the two connections (and of a timer or a dial), serialized by mu.
//
// The request body flows through body: bytes are sent upstream as the
// upstream window allows and only then granted back to the client
// (h2.Stream.Consumed), so at most the stream window is held. While the
// request may still be retried (route.RetryPolicy, at most
// Config.ReplayBufferBytes: Envoy's per_request_buffer_limit_bytes) the
// bytes sent are kept to be sent again; past that they are dropped and
// the request is no longer retried. Retries decide like the HTTP/1 path
// (attempt.again).
type h2Fwd struct {
	// mu serializes the events; it guards fwState.
	mu sync.Mutex
	fwState
}

// fwState is the state of one exchange; a pooled h2Fwd is reset under mu.
type fwState struct {
	h          *h2Handler
	hc         *h2Conn
	ds         *h2.Stream
	cs         *clusterState
	start      time.Time
	idempotent bool
	limit      int // replay limit
	// view is the routing view of the request; its byte slices point into
	// scratch.
	view    route.Request
	vfields [24]route.HeaderField
	scratch [1 << 10]byte
	req     []hpack.HeaderField // the upstream request headers
	reqID   [36]byte            // backs a generated X-Request-Id

	a        attempt
	up       *h2.ClientStream // the current attempt's stream
	host     *host
	ep       *lb.Endpoint
	waitGen  uint64      // invalidates a pending pool wait
	dialing  bool        // the attempt waits for a connection (BeginConnect)
	loadAt   time.Time   // the attempt's start for load reports; zero: counted
	answerAt int64       // unix nanoseconds the attempt was sent, awaiting its head for least loaded; 0: none
	timer    *time.Timer // fires onTimer; made once, re-armed
	timerAt  time.Time   // when the timer fires; zero: not armed
	tryAt    time.Time   // the attempt's deadline until its response headers; zero: none
	idle     time.Duration
	idleAt   time.Time // when the stream idle timeout is due if no frame moves
	progress uint64    // counts frames moved either way (stream idle timeout)
	seen     uint64    // progress when the idle timer was armed
	// Stall detection (h2stall.go): when the attempt's request headers
	// went out, and when its stall check is due (zero: no watch).
	sentAt, stallAt time.Time
	quick           int    // early checks left of a watch that may hedge (checkHedge); zero: none
	stallEnded      bool   // the exchange ended in 504 because its host stalled
	body            []byte // request bytes from offset base on
	base            int64  // bytes dropped from the front of body
	sent            int64  // bytes sent on the current attempt
	granted         int64  // bytes granted back to the client
	recv            int64
	reqEnd          bool
	sentEnd         bool
	relayed         bool // the response (or a local reply) started downstream
	resp            []byte
	respEnd         bool
	respTr          []hpack.HeaderField // trailers waiting behind resp
	hasTr           bool
	kept            *keptResponse
	code            int
	al              accessInfo // response flags and the last endpoint, for the access log
	span            spanInfo   // this hop's span (Config.Tracer)
	tp              [55]byte   // backs the traceparent sent upstream
	grpc            string     // the response's grpc-status, "" when none
	sentDown        int64      // response body bytes written to the client
	done            bool
	released        bool // back in the pool; set by unlock
}

// keptResponse is a retried trailers-only gRPC response, relayed when no
// other attempt follows.
type keptResponse struct {
	status int
	fields []hpack.HeaderField
}

// newH2Fwd prepares the forwarding of s and reports whether its route
// leads to an HTTP2 cluster (else the net/http path serves it).
func (f *h2Front) newH2Fwd(s *h2.Stream) (*h2Fwd, bool) {
	start := time.Now()
	fw := f.h.fwds.Get().(*h2Fwd)
	fw.reset(f, s, start)
	fw.fillView()
	b := f.h.p.bound.Load()
	rt, cl := resolve(b.table, f.hc.mode, &fw.view, f.hc.fixed)
	// A denied request is answered on the net/http path (serveHTTP).
	denied := inboundDenied(b.table, f.hc.mode, f.hc.caller, &fw.view) != ""
	if cl == nil || cl.Protocol != route.HTTP2 || s.Method == "CONNECT" || denied {
		fw.ds = nil
		f.h.fwds.Put(fw)
		return nil, false
	}
	fw.cs = b.clusters[cl.Index]
	if t := f.h.p.cfg.Tracer; t != nil {
		fw.startSpan(t)
	}
	fw.a.init(b, rt, cl, start, f.h.p.cfg.ConnectRetries)
	if rt != nil {
		if hk, ok := rt.HashKey(&fw.view); ok {
			fw.a.info.SetHash(hk)
		}
	}
	fw.idempotent = idempotentMethod(s.Method)
	fw.a.idempotent = fw.idempotent // a stalled host may be probed by it
	// The route timer starts once the request is completely received and
	// stops at the response headers (Envoy's; as on HTTP/1.1); the stream
	// idle timeout bounds the rest while nothing moves.
	fw.a.deadline = time.Time{}
	fw.idle = f.h.p.cfg.StreamIdleTimeout
	// Up to ReplayBufferBytes stay replayable even without a retry policy:
	// a stream refused by the upstream (or a connection that failed) was
	// not processed and goes to another endpoint, as on HTTP/1 a body
	// already read is always kept.
	fw.limit = max(f.h.p.cfg.ReplayBufferBytes, 0)
	fw.buildRequest()
	return fw, true
}

// reset prepares a pooled forwarder for s, keeping its buffers.
// Late events of its previous exchange may be waiting for mu: they tell
// themselves apart by ds, up, waitGen (kept increasing) and timerAt.
func (fw *h2Fwd) reset(f *h2Front, s *h2.Stream, start time.Time) {
	fw.mu.Lock()
	fw.fwState = fwState{
		h: f.h, hc: f.hc, ds: s, start: start, waitGen: fw.waitGen + 1,
		req: fw.req[:0], body: fw.body[:0], resp: fw.resp[:0], respTr: fw.respTr[:0], timer: fw.timer,
	}
	fw.mu.Unlock()
}

// unlock releases mu, and returns the forwarder to the pool once its
// exchange is done: no method touches it after that, and late events of
// its streams or timer are told apart (onTimer, the ds and up checks).
func (fw *h2Fwd) unlock() {
	release := fw.done && !fw.released
	if release {
		fw.released = true
		fw.ds, fw.up, fw.kept = nil, nil, nil
		clear(fw.req[:cap(fw.req)])
		clear(fw.respTr[:cap(fw.respTr)])
		if cap(fw.body) > 64<<10 {
			fw.body = nil
		}
		if cap(fw.resp) > 64<<10 {
			fw.resp = nil
		}
	}
	h := fw.h
	fw.mu.Unlock()
	if release {
		h.fwds.Put(fw)
	}
}

// fillView fills the routing view from the stream's fields.
func (fw *h2Fwd) fillView() {
	s := fw.ds
	buf := fw.scratch[:0]
	str := func(v string) []byte {
		if len(buf)+len(v) > cap(buf) {
			return []byte(v)
		}
		buf = append(buf, v...)
		return buf[len(buf)-len(v) : len(buf) : len(buf)]
	}
	path, _, _ := strings.Cut(s.Path, "?")
	host := s.Authority
	fields := fw.vfields[:0]
	for _, hf := range s.Fields {
		if hf.Name == "host" && host == "" {
			host = hf.Value
		}
		fields = append(fields, route.HeaderField{Name: str(hf.Name), Value: str(hf.Value)})
	}
	fw.view = route.Request{Host: str(host), Method: str(s.Method), Path: str(path), Headers: fields, SourceIP: fw.hc.peerIP}
}

// buildRequest builds the upstream request headers with the HTTP/1
// path's forwarding rules (X-Forwarded-*, X-Request-Id; rewriteHeaders).
func (fw *h2Fwd) buildRequest() {
	s := fw.ds
	trusted := fw.hc.trusted
	authority := s.Authority
	if authority == "" {
		authority = string(fw.view.Host)
	}
	req := fw.req[:0]
	req = append(req, hpack.HeaderField{Name: ":method", Value: s.Method}, hpack.HeaderField{Name: ":scheme", Value: "http"},
		hpack.HeaderField{Name: ":authority", Value: authority}, hpack.HeaderField{Name: ":path", Value: s.Path})
	xff, hasProto, hasID := "", false, false
	for _, hf := range s.Fields {
		switch hf.Name {
		case "host", "proxy-authorization":
			continue
		case "x-forwarded-for":
			if trusted {
				xff += hf.Value + ", "
			}
			continue
		case "x-forwarded-proto", "x-forwarded-host", "forwarded":
			if !trusted {
				continue
			}
			hasProto = hasProto || hf.Name == "x-forwarded-proto"
		case "x-request-id":
			hasID = true
		case "traceparent":
			if fw.span.on {
				continue // replaced below with this hop's span
			}
		case "x-forwarded-client-cert":
			// Removed from clients inbound and at the edge (Envoy's
			// SANITIZE); an authenticated caller's is set below.
			if k := fw.hc.mode.Kind; k == Inbound || k == Gateway {
				continue
			}
		}
		req = append(req, hf)
	}
	if fw.hc.xfcc != "" {
		req = append(req, hpack.HeaderField{Name: "x-forwarded-client-cert", Value: fw.hc.xfcc})
	}
	req = append(req, hpack.HeaderField{Name: "x-forwarded-for", Value: xff + fw.hc.peer})
	if !hasProto {
		req = append(req, hpack.HeaderField{Name: "x-forwarded-proto", Value: "http"})
	}
	if fw.span.on {
		req = append(req, fw.traceparent())
	}
	if !hasID {
		// Sensitive: a unique value is never worth an HPACK table entry,
		// and so the encoder never keeps the string, which aliases
		// fw.reqID for the forwarder's lifetime.
		id := appendRequestID(fw.reqID[:0])
		req = append(req, hpack.HeaderField{Name: "x-request-id", Value: unsafe.String(&id[0], len(id)), Sensitive: true})
	}
	fw.req = req
}

// run starts the forwarding; called on the downstream reader goroutine.
func (fw *h2Fwd) run() {
	fw.ds.SetSink(fw)
	fw.mu.Lock()
	defer fw.unlock()
	fw.reqEnd = fw.ds.Ended
	if int(fw.cs.inflight.Add(1)) > fw.a.cl.MaxRequests {
		fw.cs.inflight.Add(-1)
		fw.cs = nil
		fw.reply(503, "upstream overflow (circuit breaker)")
		return
	}
	fw.next()
}

// next starts the next attempt, or answers when none is left.
func (fw *h2Fwd) next() {
	a := &fw.a
	e, hst := a.pick()
	switch {
	case hst == nil && len(a.cl.Endpoints) == 0:
		fw.al.flags |= accesslog.NoHealthyUpstream
		fw.reply(503, noInstanceMessage(a.cl.Name))
		return
	case fw.kept != nil && (hst == nil || a.triedHost(hst)):
		// A gRPC client needs a gRPC status, not a local reply.
		fw.al.flags |= accesslog.UpstreamRetryLimitExceeded
		fw.relayHeaders(fw.kept.status, fw.kept.fields, true)
		return
	case hst == nil:
		code, msg, flag := a.noPick()
		fw.al.flags |= flag
		fw.reply(code, msg)
		return
	case a.triedHost(hst):
		fw.al.flags |= accesslog.UpstreamRetryLimitExceeded
		fw.reply(a.last, failureMessage(a.last))
		return
	}
	a.markTried(hst)
	fw.al.upstream = hst.addr
	fw.stallEnded = false
	hst.countRequest(fw.h.p.metrics)
	hst.load.begin()
	fw.loadAt = time.Now()
	e.Begin()
	if a.cl.TracksAnswers() {
		fw.answerAt = fw.loadAt.UnixNano()
		e.Sent(fw.answerAt)
	}
	fw.host, fw.ep = hst, e
	fw.sent, fw.sentEnd = 0, false
	fw.startTry()
	fw.connect()
}

// connect opens the attempt's stream on a pooled connection, or waits for
// one.
func (fw *h2Fwd) connect() {
	pool := fw.host.h2Pool(fw.h.p)
	if cc := pool.Get(); cc != nil && fw.open(cc) {
		return
	}
	fw.waitGen++
	gen := fw.waitGen
	timeout := fw.a.cl.ConnectTimeout
	if !fw.a.deadline.IsZero() {
		timeout = min(timeout, time.Until(fw.a.deadline))
	}
	if !fw.dialing {
		fw.dialing = true
		fw.ep.BeginConnect()
	}
	if err := pool.Wait(timeout, func(cc *h2.ClientConn, err error) { fw.onConn(gen, cc, err) }); err != nil {
		fw.endAttempt(false)
		fw.failed(connectFailed, 502) // the endpoint was retired
	}
}

func (fw *h2Fwd) onConn(gen uint64, cc *h2.ClientConn, err error) {
	fw.mu.Lock()
	defer fw.unlock()
	if fw.done || fw.released || gen != fw.waitGen {
		return
	}
	fw.waitGen++
	if err != nil || cc != nil {
		fw.dialing = false
		fw.ep.EndConnect()
	}
	switch {
	case err != nil:
		fw.endAttempt(false)
		fw.failed(connectFailed, 502)
	case cc != nil && fw.open(cc):
	default:
		fw.connect() // another stream took the room: wait again
	}
}

// open sends the request headers and what there is of the body on cc.
func (fw *h2Fwd) open(cc *h2.ClientConn) bool {
	end := fw.reqEnd && fw.recv == 0 && fw.ds.Trailers == nil
	up, ok := cc.NewStream(fw.req, end, (*h2FwdUp)(fw))
	if !ok {
		return false
	}
	fw.up, fw.sentEnd = up, end
	if end {
		fw.watchStall()
	}
	fw.pump()
	return true
}

// pump sends buffered request bytes upstream as far as the window allows.
func (fw *h2Fwd) pump() {
	if fw.up == nil || fw.sentEnd {
		return
	}
	data := fw.body[fw.sent-fw.base:]
	last := fw.reqEnd && fw.ds.Trailers == nil
	if len(data) > 0 || last {
		n, _ := fw.up.WriteData(data, last)
		fw.sent += int64(n)
		if n < len(data) {
			fw.grant()
			return
		}
	}
	fw.grant()
	if fw.reqEnd {
		if !last {
			fw.up.WriteTrailers(fw.ds.Trailers)
		}
		fw.sentEnd = true
		fw.watchStall() // the whole request is out: the wait for the answer starts
	}
}

// grant gives the client back the window of bytes forwarded for the
// first time, and drops them when they can no longer be replayed.
func (fw *h2Fwd) grant() {
	if n := fw.sent - fw.granted; n > 0 {
		fw.granted = fw.sent
		fw.ds.Consumed(int(n))
	}
	if fw.recv > int64(fw.limit) && fw.sent > fw.base {
		k := copy(fw.body, fw.body[fw.sent-fw.base:])
		fw.body = fw.body[:k]
		fw.base = fw.sent
	}
}

// OnData receives request body bytes (h2.Sink).
func (fw *h2Fwd) OnData(s *h2.Stream, p []byte, end bool) {
	fw.mu.Lock()
	defer fw.unlock()
	if fw.done || s != fw.ds {
		return
	}
	fw.recv += int64(len(p))
	fw.body = append(fw.body, p...)
	fw.progress++
	if end && !fw.reqEnd {
		fw.reqEnd = true
		fw.startTry()
	}
	fw.pump()
}

// OnReset: the client reset its stream or went away (h2.Sink).
func (fw *h2Fwd) OnReset(s *h2.Stream) {
	fw.mu.Lock()
	defer fw.unlock()
	if fw.done || s != fw.ds {
		return
	}
	if fw.up != nil {
		fw.up.Reset(http2.ErrCodeCancel)
	}
	if !fw.relayed {
		fw.code = 502 // as classify's clientFailed
	}
	fw.al.flags |= accesslog.DownstreamConnectionTermination
	fw.finish()
}

// OnWritable: the client's window opened (h2.Sink).
func (fw *h2Fwd) OnWritable(s *h2.Stream) {
	fw.mu.Lock()
	defer fw.unlock()
	if s == fw.ds {
		fw.flushResponse()
	}
}
