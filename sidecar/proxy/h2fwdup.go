package proxy

import (
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/shoal-mesh/shoal/sidecar/accesslog"
	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/proxy/h2"
)

// The upstream side of h2Fwd: response events, retries and timers.

// h2FwdUp is h2Fwd as the h2.Receiver of its upstream streams (the
// method names of h2.Sink and h2.Receiver overlap).
type h2FwdUp h2Fwd

var (
	_ h2.Sink     = (*h2Fwd)(nil)
	_ h2.Receiver = (*h2FwdUp)(nil)
)

// OnResponse decides on the response headers like h2Handler.outcome: the
// per-try and route timers stop, outlier detection counts a 5xx or a
// trailers-only gRPC server error (Envoy's mapping), and a retriable one
// goes to another attempt (h2.Receiver).
func (u *h2FwdUp) OnResponse(up *h2.ClientStream, status int, fields []hpack.HeaderField, end bool) {
	fw := (*h2Fwd)(u)
	fw.mu.Lock()
	defer fw.unlock()
	if up != fw.up || fw.done {
		return
	}
	fw.tryAt = time.Time{} // the route and per-try timers end here
	fw.progress++
	fw.answered(true)
	a, hst := &fw.a, fw.host
	if fw.responded(status, fields) {
		return // another sidecar's stall answer: the request leaves hst
	}
	fw.armTimer()
	fields = fw.takeLoad(fields)
	fw.loadDone(status >= 500)
	gs, trailersOnly := grpcStatusField(fields)
	if status >= 500 || trailersOnly && grpcIsServerError(gs) {
		hst.on5xx(&a.cl.Outlier, len(a.hosts))
	} else {
		hst.onSuccess()
	}
	a.replayable = fw.base == 0
	switch {
	case a.mayRetryStatus(status):
		fw.endAttempt(true)
		fw.retry(retryStatus, status)
	case trailersOnly && a.mayRetryGRPC(gs):
		fw.kept = &keptResponse{status: status, fields: append([]hpack.HeaderField(nil), fields...)}
		fw.endAttempt(!end)
		fw.retry(retryStatus, status)
	default:
		fw.relayHeaders(status, fields, end)
	}
}

// OnData relays response body bytes (h2.Receiver).
func (u *h2FwdUp) OnData(up *h2.ClientStream, p []byte, end bool) {
	fw := (*h2Fwd)(u)
	fw.mu.Lock()
	defer fw.unlock()
	if up != fw.up || fw.done {
		return
	}
	fw.resp = append(fw.resp, p...)
	fw.respEnd = end
	fw.progress++
	fw.flushResponse()
}

// OnTrailers relays the response trailers (h2.Receiver).
func (u *h2FwdUp) OnTrailers(up *h2.ClientStream, fields []hpack.HeaderField) {
	fw := (*h2Fwd)(u)
	fw.mu.Lock()
	defer fw.unlock()
	if up != fw.up || fw.done {
		return
	}
	fw.respTr = append(fw.respTr[:0], fw.takeLoad(fields)...)
	fw.hasTr, fw.respEnd = true, true
	fw.flushResponse()
}

// OnReset: the attempt's stream failed (h2.Receiver).
func (u *h2FwdUp) OnReset(up *h2.ClientStream, err error) {
	fw := (*h2Fwd)(u)
	fw.mu.Lock()
	defer fw.unlock()
	if up != fw.up || fw.done {
		return
	}
	if fw.relayed {
		fw.up = nil
		fw.ds.Reset(http2.ErrCodeInternal) // the response is cut short
		fw.al.flags |= accesslog.UpstreamConnectionTermination
		fw.finish()
		return
	}
	fw.tryAt = time.Time{}
	fw.endAttempt(false)
	if err == h2.ErrRefused {
		// Not processed (REFUSED_STREAM, GOAWAY): like a connect failure,
		// safe to send elsewhere.
		fw.failed(connectFailed, 502)
		return
	}
	fw.failed(reset, 502)
}

// OnWritable: the upstream window opened (h2.Receiver).
func (u *h2FwdUp) OnWritable(up *h2.ClientStream) {
	fw := (*h2Fwd)(u)
	fw.mu.Lock()
	defer fw.unlock()
	if up == fw.up && !fw.done {
		fw.pump()
	}
}

// failed handles an attempt that got no response.
func (fw *h2Fwd) failed(out outcome, code int) {
	fw.up = nil
	fw.a.replayable = fw.base == 0
	fw.retry(out, code)
}

// retry sends the request to another endpoint when attempt.again allows.
func (fw *h2Fwd) retry(out outcome, code int) {
	if fw.base > 0 && out != retryStatus {
		// Part of the body is gone: no attempt can send it again.
		fw.a.connects, fw.a.retries = 0, 0
	}
	fw.al.flags |= outcomeFlag(out)
	if fw.a.again(out, code, fw.host, fw.idempotent) && fw.base == 0 {
		fw.next()
		return
	}
	if fw.a.nTried > 1 {
		fw.al.flags |= accesslog.UpstreamRetryLimitExceeded
	}
	if fw.kept != nil {
		fw.relayHeaders(fw.kept.status, fw.kept.fields, true)
		return
	}
	fw.reply(fw.a.last, failureMessage(fw.a.last))
}

// loadDone counts the end of the attempt in the host's load report
// (LRS), once.
func (fw *h2Fwd) loadDone(failed bool) {
	if !fw.loadAt.IsZero() {
		fw.host.load.end(time.Since(fw.loadAt), failed)
		fw.loadAt = time.Time{}
	}
}

// answered ends the attempt's wait for its response head for least
// loaded (lb.Endpoint.Answered), once: head reports that it arrived.
func (fw *h2Fwd) answered(head bool) {
	if fw.answerAt == 0 || fw.ep == nil {
		return
	}
	var now int64
	if head {
		now = time.Now().UnixNano()
	}
	fw.ep.Answered(fw.answerAt, now, head)
	fw.answerAt = 0
}

// endAttempt leaves the current attempt, resetting its stream.
func (fw *h2Fwd) endAttempt(reset bool) {
	fw.stallAt = time.Time{}
	fw.loadDone(true) // no response headers: a failed attempt
	if fw.up != nil && reset {
		fw.up.Reset(http2.ErrCodeCancel)
	}
	fw.up = nil
	if fw.ep != nil {
		if fw.dialing {
			fw.dialing = false
			fw.ep.EndConnect()
		}
		fw.answered(false)
		fw.ep.End()
		fw.ep = nil
	}
}

// relayHeaders sends the response headers downstream.
func (fw *h2Fwd) relayHeaders(status int, fields []hpack.HeaderField, end bool) {
	fw.relayed, fw.code = true, status
	fw.al.flags &^= retriedFlags
	if end && fw.h.p.cfg.AccessLog != nil {
		fw.grpc = grpcStatusValue(fields) // trailers-only
	}
	fw.ds.WriteHeaders(status, fields, end)
	if end {
		fw.finish()
	}
}

// reply answers with a local plain-text response.
func (fw *h2Fwd) reply(code int, msg string) {
	fw.relayed, fw.code = true, code
	fields := []hpack.HeaderField{
		{Name: "content-type", Value: "text/plain; charset=utf-8"},
		{Name: "content-length", Value: strconv.Itoa(len(msg) + 1)},
	}
	if code == 504 && fw.stallEnded {
		fields = append(fields, hpack.HeaderField{Name: stalledHeaderLower, Value: "1"})
	}
	fw.ds.WriteHeaders(code, fields, false)
	fw.resp = append(append(fw.resp[:0], msg...), '\n')
	fw.respEnd = true
	fw.flushResponse()
}

// flushResponse writes buffered response bytes as the client's window
// allows, granting them back upstream, then the trailers or the end.
func (fw *h2Fwd) flushResponse() {
	if fw.done {
		return
	}
	if len(fw.resp) > 0 || fw.respEnd && !fw.hasTr {
		n, err := fw.ds.WriteData(fw.resp, fw.respEnd && !fw.hasTr)
		fw.sentDown += int64(n)
		if n > 0 && fw.up != nil {
			fw.up.Consumed(n)
		}
		k := copy(fw.resp, fw.resp[n:])
		fw.resp = fw.resp[:k]
		if err != nil || k > 0 {
			return
		}
	}
	if !fw.respEnd {
		return
	}
	if fw.hasTr {
		fw.ds.WriteTrailers(fw.respTr)
		if fw.h.p.cfg.AccessLog != nil {
			fw.grpc = grpcStatusValue(fw.respTr)
		}
	}
	fw.finish()
}

// finish ends the exchange: counters, metrics, and the upstream stream if
// it is still open (a response that ended before its request).
func (fw *h2Fwd) finish() {
	if fw.done {
		return
	}
	fw.done = true
	fw.stopTimer()
	fw.endAttempt(true)
	fw.waitGen++
	cs := fw.cs
	if cs == nil {
		cs = fw.h.p.noCluster
	} else {
		fw.cs.inflight.Add(-1)
		fw.a.release()
	}
	cs.codes.inc(fw.code)
	took := time.Since(fw.start)
	cs.latency.observe(cs.name, took.Seconds())
	countEdge(fw.hc.mode, cs, fw.a.rt, fw.code, took.Seconds())
	if l := fw.h.p.cfg.AccessLog; l != nil {
		fw.logAccess(l, took, cs.name)
	}
	if t := fw.h.p.cfg.Tracer; t != nil {
		fw.span.end(t, fw.hc.mode.Kind, fw.start, fw.view.Method, fw.view.Path, fw.code, fw.al.upstream, cs.name)
	}
}

// startTry arms the attempt's deadline once the request is completely
// received: the route timeout (started then) or the per-try timeout,
// whichever is first, until the response headers. Before that, and
// after, the stream idle timeout bounds the exchange.
func (fw *h2Fwd) startTry() {
	fw.tryAt = time.Time{}
	if fw.reqEnd {
		now := time.Now()
		fw.a.startTimer(now)
		fw.tryAt = fw.a.tryDeadline(now)
	}
	fw.armTimer()
}

// armTimer sets the timer to the attempt's deadline or the stream idle
// timeout from now, whichever is first.
func (fw *h2Fwd) armTimer() {
	if fw.idle > 0 {
		fw.idleAt = time.Now().Add(fw.idle)
		fw.seen = fw.progress
	}
	fw.rearm()
}

// rearm sets the timer to the earliest of the attempt's deadline, the
// stream idle timeout armed last and the stall check.
func (fw *h2Fwd) rearm() {
	at := fw.tryAt
	if fw.idle > 0 && (at.IsZero() || fw.idleAt.Before(at)) {
		at = fw.idleAt
	}
	if !fw.stallAt.IsZero() && (at.IsZero() || fw.stallAt.Before(at)) {
		at = fw.stallAt
	}
	fw.timerAt = at
	switch {
	case at.IsZero():
		if fw.timer != nil {
			fw.timer.Stop()
		}
	case fw.timer == nil:
		fw.timer = time.AfterFunc(time.Until(at), fw.onTimer)
	default:
		fw.timer.Reset(time.Until(at))
	}
}

func (fw *h2Fwd) stopTimer() {
	if !fw.timerAt.IsZero() {
		fw.timerAt = time.Time{}
		fw.timer.Stop()
	}
}

// onTimer acts when the armed time passed: the attempt's deadline (504 or
// a retry), or the stream idle timeout when no frame moved since it was
// armed (504 before the response headers, a reset after). A timer armed
// for an earlier time (an earlier attempt or exchange) finds timerAt zero
// or later.
func (fw *h2Fwd) onTimer() {
	fw.mu.Lock()
	defer fw.unlock()
	now := time.Now()
	if fw.timerAt.IsZero() || now.Before(fw.timerAt) || fw.done {
		return
	}
	if fw.checkStall(now) {
		return
	}
	tryOver := !fw.tryAt.IsZero() && !now.Before(fw.tryAt) && !fw.relayed
	if !tryOver && (fw.idle <= 0 || now.Before(fw.idleAt)) {
		fw.rearm() // only the stall check was due
		return
	}
	if !tryOver && fw.progress != fw.seen {
		fw.armTimer() // bytes moved: the idle timeout starts again
		return
	}
	fw.timerAt = time.Time{}
	if fw.relayed {
		fw.ds.Reset(http2.ErrCodeCancel) // the stream stalled
		fw.al.flags |= accesslog.StreamIdleTimeout
		fw.finish()
		return
	}
	fw.waitGen++
	fw.endAttempt(true)
	fw.a.replayable = fw.base == 0
	fw.retry(timedOut, 504)
}

// grpcStatusField returns the grpc-status of a trailers-only gRPC response
// (in the response headers), like grpcStatus.
func grpcStatusField(fields []hpack.HeaderField) (int, bool) {
	for _, f := range fields {
		if f.Name == "grpc-status" {
			n, err := strconv.Atoi(f.Value)
			return n, err == nil
		}
	}
	return 0, false
}

// takeLoad gives the backend's ORCA load report among fields (headers or
// trailers) to the attempt's endpoint for least_loaded, and removes the ORCA
// headers unless the response goes on to a caller's sidecar (inbound):
// they are for the mesh's balancers, not for clients (issue 17). It
// filters fields in place and returns the shortened slice.
func (fw *h2Fwd) takeLoad(fields []hpack.HeaderField) []hpack.HeaderField {
	strip := fw.hc.mode.Kind != Inbound
	n := 0
	for _, f := range fields {
		if f.Name == lb.ORCAHeader && fw.ep != nil {
			if r, ok := lb.ParseORCA(f.Value); ok {
				fw.ep.ReportLoad(r, time.Now())
			}
		}
		// HTTP/2 field names are lower case (RFC 9113 8.2.1).
		if strip && (f.Name == lb.ORCAHeader || f.Name == lb.ORCAHeader+"-bin" || f.Name == lb.ORCAHeader+"-json") {
			continue
		}
		fields[n] = f
		n++
	}
	return fields[:n]
}
