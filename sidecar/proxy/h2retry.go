package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/accesslog"
	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// errPerTryTimeout is the cause of an attempt cancelled by the route's
// per-try timeout before its response headers arrived.
var errPerTryTimeout = errors.New("proxy: per-try timeout")

// errStalled is the cause of an attempt cancelled because its host was
// found stalled (bridgeStall).
var errStalled = errors.New("proxy: endpoint stalled")

// bridgeStall is the stall watch of an attempt on the net/http path (as
// conn.watchStall on HTTP/1.1 and h2Fwd.watchStall): once per stall
// threshold after the request was sent completely, it checks whether the
// attempt's host answered anything meanwhile (host.checkStall), and when
// the host is found stalled it cancels the attempt; attempt.again then
// sends an idempotent request elsewhere and answers others 504 with the
// stalled mark. The transport holds the attempt until its response
// headers, so the watch is a timer of its own.
type bridgeStall struct {
	hst    *host
	s      *route.StallDetection
	body   *replayBody
	cancel context.CancelCauseFunc

	// mu guards the fields below.
	mu      sync.Mutex
	t       *time.Timer
	sent    time.Time // when the request body was seen complete; zero: not yet
	stopped bool
	fired   bool // the host was found stalled and the attempt cancelled
}

// watchBridgeStall starts the stall watch of an attempt on hst that
// started at start with body (nil: none).
func watchBridgeStall(hst *host, s *route.StallDetection, body *replayBody, start time.Time, cancel context.CancelCauseFunc) *bridgeStall {
	w := &bridgeStall{hst: hst, s: s, body: body, cancel: cancel}
	if body.complete() {
		w.sent = start
	}
	w.mu.Lock() // check waits for t
	w.t = time.AfterFunc(hst.stallThreshold(s), w.check)
	w.mu.Unlock()
	return w
}

// check runs on the timer: a client still sending is not waiting for an
// answer yet; else the host is checked.
func (w *bridgeStall) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	now := time.Now()
	switch {
	case w.sent.IsZero():
		if w.body.complete() {
			w.sent = now
		}
	case w.hst.checkStall(w.s, w.sent, now):
		w.fired = true
		w.cancel(errStalled)
		return
	}
	w.t.Reset(w.hst.stallThreshold(w.s))
}

// stop ends the watch once the transport returned, and reports whether it
// had found the host stalled.
func (w *bridgeStall) stop() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	w.t.Stop()
	return w.fired
}

// transportExchange is one request's state on the net/http path: h2c
// clients and HTTP/1.1 requests to HTTP2 clusters or upgrades. It is
// allocated once per request so that the upstream URL and the retry state
// cost no allocation of their own. Owned by the request's goroutine;
// transports of abandoned attempts may still read url.
type transportExchange struct {
	a    attempt
	body *replayBody // nil: the request has no body
	url  url.URL     // the first attempt's
	// stop releases the per-try context of the relayed attempt, whose
	// response body is read under it until the request ends.
	stop context.CancelCauseFunc
	// al is what the access log records beyond the request.
	al accessInfo
}

// end releases the relayed attempt's context.
func (x *transportExchange) end() {
	if x.stop != nil {
		x.stop(context.Canceled)
	}
}

// setBody prepares the replay of r's body under the attempt's policy
// (HTTP/1's rule: no policy, no buffering), limited like HTTP/1 by
// Config.ReplayBufferBytes.
func (x *transportExchange) setBody(body io.Reader, contentLength int64, replayBytes int) {
	if body == nil || body == http.NoBody || contentLength == 0 {
		return
	}
	if x.a.policy() == nil {
		replayBytes = 0
	}
	x.body = newReplayBody(body, replayBytes)
}

// roundTrip sends out to the cluster's endpoints under x.a's retry policy,
// deciding like the HTTP/1 path (attempt.again), and returns the response
// to relay, or the status and message of a local reply. ctx is out's
// context, ending at the route deadline.
func (h *h2Handler) roundTrip(ctx context.Context, out *http.Request, x *transportExchange, idempotent bool) (*http.Response, int, string) {
	a := &x.a
	var kept *http.Response // a retried trailers-only gRPC response
	for {
		e, hst := a.pick()
		switch {
		case hst == nil && len(a.cl.Endpoints) == 0:
			x.al.flags |= accesslog.NoHealthyUpstream
			return nil, 503, noInstanceMessage(a.cl.Name)
		case kept != nil && (hst == nil || a.triedHost(hst)):
			// A gRPC client needs a gRPC status, not a local reply.
			x.al.flags |= accesslog.UpstreamRetryLimitExceeded
			x.al.flags &^= retriedFlags
			return kept, kept.StatusCode, ""
		case hst == nil:
			code, msg, flag := a.noPick()
			x.al.flags |= flag
			return nil, code, msg
		case a.triedHost(hst):
			x.al.flags |= accesslog.UpstreamRetryLimitExceeded
			return nil, a.last, failureMessage(a.last)
		}
		a.markTried(hst)
		x.al.upstream = hst.addr
		res, oc, code := h.try(ctx, out, x, e, hst)
		switch oc {
		case relayed:
			x.al.flags &^= retriedFlags
			return res, code, ""
		case clientFailed:
			x.al.flags |= accesslog.DownstreamConnectionTermination
			return nil, 502, failureMessage(502)
		}
		x.al.flags |= outcomeFlag(oc)
		kept = res
		a.replayable = x.body.replayable()
		if !a.again(oc, code, hst, idempotent) {
			if a.nTried > 1 {
				x.al.flags |= accesslog.UpstreamRetryLimitExceeded
			}
			return nil, a.last, failureMessage(a.last)
		}
	}
}

// try sends one attempt to e. It returns the response with relayed, or
// the outcome of a failure; a retriable trailers-only gRPC response comes
// back too, its body closed, to be relayed if no other attempt follows.
func (h *h2Handler) try(ctx context.Context, out *http.Request, x *transportExchange, e *lb.Endpoint, hst *host) (*http.Response, outcome, int) {
	a := &x.a
	req, tctx := x.request(ctx, out, e.Address), ctx
	var timer *time.Timer
	cancel := context.CancelCauseFunc(func(error) {})
	perTry := a.tryDeadline(time.Now())
	watchStall := !a.cl.Stall.Disabled
	if perTry != a.deadline || watchStall {
		tctx, cancel = context.WithCancelCause(ctx)
		req = req.WithContext(tctx)
	}
	if perTry != a.deadline {
		// The per-try timeout bounds the attempt until its response
		// headers (route.RetryPolicy.PerTryTimeout), so it cancels the
		// attempt's context from a timer stopped once they arrive.
		timer = time.AfterFunc(time.Until(perTry), func() { cancel(errPerTryTimeout) })
	}
	hst.countRequest(h.p.metrics)
	hst.load.begin()
	start := time.Now()
	var watch *bridgeStall
	if watchStall {
		watch = watchBridgeStall(hst, &a.cl.Stall, x.body, start, cancel)
	}
	e.Begin()
	track := a.cl.TracksAnswers()
	if track {
		e.Sent(start.UnixNano())
	}
	res, err := h.transport(a.cl).RoundTrip(req)
	if track {
		e.Answered(start.UnixNano(), time.Now().UnixNano(), err == nil)
	}
	e.End()
	if err == nil {
		if v := res.Header["Endpoint-Load-Metrics"]; len(v) > 0 {
			if r, ok := lb.ParseORCA(v[0]); ok {
				e.ReportLoad(r, start) // least_loaded's weights (issue 17)
			}
		}
	}
	defer func() { hst.load.end(time.Since(start), err != nil || res == nil || res.StatusCode >= 500) }()
	if timer != nil && !timer.Stop() && err == nil {
		// The per-try timeout fired as the headers arrived: the body would
		// be cut short, so the attempt failed.
		res.Body.Close()
		res, err = nil, errPerTryTimeout
	}
	if watch != nil && watch.stop() && err == nil {
		// The host was found stalled as the headers arrived: the attempt
		// was cancelled, and its body with it.
		res.Body.Close()
		res, err = nil, errStalled
	}
	res, oc, code := h.outcome(ctx, tctx, x, hst, start, res, err)
	if oc == relayed {
		x.stop = cancel
	} else {
		cancel(context.Canceled)
	}
	return res, oc, code
}

// outcome accounts the attempt's result on hst and decides whether the
// response is relayed (see try).
func (h *h2Handler) outcome(ctx, tctx context.Context, x *transportExchange, hst *host, start time.Time, res *http.Response, err error) (*http.Response, outcome, int) {
	a := &x.a
	if err != nil {
		return nil, h.classify(ctx, tctx, err, x.body), 502
	}
	code := res.StatusCode
	now := time.Now()
	if code == http.StatusGatewayTimeout && res.Header.Get(stalledHeader) != "" {
		// Another sidecar's app is stuck behind this endpoint (see
		// stalledHeader): as if this proxy had seen the stall.
		res.Body.Close()
		hst.markStalled(now)
		return nil, stalled, code
	}
	hst.onResponse(now, now.Sub(start))
	gs, trailersOnly := grpcStatus(res.Header)
	// Outlier detection sees a trailers-only gRPC failure as the HTTP
	// status Envoy maps it to (UNAVAILABLE is a 503), so a backend that
	// answers every call UNAVAILABLE is ejected, not only retried around.
	if code >= 500 || trailersOnly && grpcIsServerError(gs) {
		hst.on5xx(&a.cl.Outlier, len(a.hosts))
	} else {
		hst.onSuccess()
	}
	a.replayable = x.body.replayable()
	switch {
	case a.mayRetryStatus(code):
		res.Body.Close()
		return nil, retryStatus, code
	case trailersOnly && a.mayRetryGRPC(gs):
		res.Body.Close()
		res.Body = http.NoBody
		return res, retryStatus, code
	}
	return res, relayed, code
}

// request returns the request of the next attempt, to addr. The first
// attempt sends out itself; later ones send a copy with their own URL,
// since the transport of an abandoned attempt may still read its request.
func (x *transportExchange) request(ctx context.Context, out *http.Request, addr string) *http.Request {
	req := out
	if x.a.nTried > 1 {
		req = out.WithContext(ctx)
		u := *out.URL
		req.URL = &u
	}
	req.URL.Scheme, req.URL.Host = "http", addr
	req.Body = nil
	if x.body != nil {
		req.Body = x.body.next()
	}
	return req
}

// classify names the failure of an attempt: ctx is the request's, tctx
// the attempt's.
func (h *h2Handler) classify(ctx, tctx context.Context, err error, body *replayBody) outcome {
	var oe *net.OpError
	switch {
	case body.failed() || errors.Is(ctx.Err(), context.Canceled):
		return clientFailed // the client reset its stream or went away
	case ctx.Err() != nil || errors.Is(err, errPerTryTimeout) || context.Cause(tctx) == errPerTryTimeout:
		return timedOut
	case errors.Is(err, errStalled) || context.Cause(tctx) == errStalled:
		return stalled
	case errors.As(err, &oe) && oe.Op == "dial":
		return connectFailed
	}
	return reset
}

// transport returns the transport for cl's protocol.
func (h *h2Handler) transport(cl *route.Cluster) http.RoundTripper {
	if cl.Protocol == route.HTTP2 {
		return h.h2t
	}
	return h.h1t
}

// grpcIsServerError reports whether a grpc-status maps to a 5xx in
// Envoy's gRPC-to-HTTP mapping (Grpc::Utility::grpcToHttpStatus): UNKNOWN,
// DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
func grpcIsServerError(code int) bool {
	switch code {
	case 2, 4, 12, 13, 14, 15:
		return true
	}
	return false
}

// grpcStatus returns the grpc-status of a trailers-only gRPC response (the
// status in the response headers; gRPC over HTTP/2, "Trailers-Only").
func grpcStatus(hd http.Header) (code int, ok bool) {
	v, found := hd["Grpc-Status"]
	if !found || len(v) != 1 {
		return 0, false
	}
	n, err := strconv.Atoi(v[0])
	return n, err == nil
}
