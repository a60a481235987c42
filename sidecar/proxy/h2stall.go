package proxy

import (
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/proxy/h2"
)

// Stall detection on the frame-level HTTP/2 path (h2Fwd), as on the
// HTTP/1.1 path (stall.go): an attempt waiting for its response headers
// checks, once per stall threshold, whether its host answered anything
// meanwhile. The check rides the forwarder's one timer (rearm), so it
// costs no goroutine or timer of its own.
//
// Hedging (least loaded) works as on HTTP/1.1 too: a request that may
// hedge (attempt.mayHedge) checks first at its endpoint's answer limit,
// then again (at most maxQuickChecks times) until the stall threshold,
// whether its endpoint stopped answering (attempt.shouldLeave); if so it
// goes to another endpoint once through the retry path, as from a stalled
// host. Its first stream is not reset: an h2Parked takes it over and ends
// the endpoint's wait for that answer (lb.Endpoint.Answered) when the
// response headers come, the stream fails, or maxParked passes.

// watchStall starts the stall watch of the attempt whose request just went
// out completely on its stream (as on HTTP/1.1, after the body: a client
// stream still sending is not waiting for an answer). Its first check
// comes at the endpoint's answer limit when the request may hedge.
func (fw *h2Fwd) watchStall() {
	now := time.Now()
	fw.sentAt = now
	fw.stallAt, fw.quick = time.Time{}, 0
	if fw.a.cl.Stall.Disabled {
		return
	}
	fw.a.replayable = fw.base == 0 // for mayHedge
	fw.stallAt, fw.quick = fw.a.firstCheck(fw.ep, fw.host, now)
	fw.rearm()
}

// checkStall runs a due stall check at now. It reports whether the
// attempt left its host, in which case the attempt ended: an idempotent
// request went to another endpoint (attempt.again), others were answered
// 504 with the stalled mark. The host was found stalled, or, for a
// request that may hedge, stopped answering (checkHedge).
func (fw *h2Fwd) checkStall(now time.Time) bool {
	if fw.stallAt.IsZero() || now.Before(fw.stallAt) {
		return false
	}
	fw.stallAt = time.Time{}
	if fw.relayed || fw.up == nil {
		return false
	}
	if fw.quick > 0 {
		return fw.checkHedge(now)
	}
	if !fw.host.checkStall(&fw.a.cl.Stall, fw.sentAt, now) {
		fw.stallAt = now.Add(fw.host.stallThreshold(&fw.a.cl.Stall))
		return false
	}
	fw.leaveStalled()
	return true
}

// checkHedge is an early check at now of an attempt that may hedge (as
// attempt.checkWatch on HTTP/1.1): when its endpoint stopped answering
// while another answers, the attempt's stream is parked and the request
// leaves (a hedged retry) and it reports true; otherwise it sets the next
// check, early again or at the stall threshold.
func (fw *h2Fwd) checkHedge(now time.Time) bool {
	fw.quick--
	if fw.a.shouldLeave(fw.ep, now.UnixNano()) && fw.park() {
		fw.a.hedge()
		fw.leaveStalled()
		return true
	}
	fw.stallAt, fw.quick = fw.a.nextCheck(fw.ep, fw.host, fw.sentAt, now, fw.quick)
	return false
}

// park hands the attempt's stream to an h2Parked, which owns the
// endpoint's wait for its answer from then on. It reports false when the
// response headers arrived or the stream ended meanwhile (their event
// waits for fw.mu): the attempt goes on.
func (fw *h2Fwd) park() bool {
	pk := &h2Parked{ep: fw.ep, sent: fw.answerAt, up: fw.up}
	pk.mu.Lock() // its events wait until the timer is set
	defer pk.mu.Unlock()
	if !fw.up.SetReceiver(pk) {
		return false
	}
	pk.timer = time.AfterFunc(maxParked, pk.expire)
	fw.up = nil     // endAttempt neither resets it nor sees its events
	fw.answerAt = 0 // the wait for its answer is pk's to end
	return true
}

// leaveStalled ends the attempt on a stalled host, or one it hedges from
// (its stream parked), and retries or answers.
func (fw *h2Fwd) leaveStalled() {
	fw.timerAt = time.Time{}
	fw.waitGen++
	fw.endAttempt(true)
	fw.a.replayable = fw.base == 0
	fw.stallEnded = true
	fw.retry(stalled, 504)
}

// responded records response headers from the attempt's host for stall
// detection: a completion clears its stall mark and feeds its latency. A
// 504 marked by another sidecar (stalledHeader: its app is stuck) marks
// the host stalled and the request leaves it as if this proxy had seen
// the stall; responded then reports true and the attempt is over.
func (fw *h2Fwd) responded(status int, fields []hpack.HeaderField) bool {
	now := time.Now()
	fw.stallAt = time.Time{}
	if status == 504 {
		for _, f := range fields {
			if f.Name == stalledHeaderLower {
				fw.host.markStalled(now)
				fw.leaveStalled()
				return true
			}
		}
	}
	fw.host.onResponse(now, now.Sub(fw.sentAt))
	return false
}

// h2Parked is the receiver of a stream whose request left its endpoint for
// another (a hedge), as Proxy.park keeps an HTTP/1.1 connection: the
// endpoint keeps owing the answer, and stays passed over, until its
// response headers come (then the stream is cancelled), the stream fails
// (a reset, or its connection closed: the proxy shutting down closes its
// pools), or maxParked passes (then it is cancelled). Each ends the wait
// Sent began (lb.Endpoint.Answered), exactly once.
type h2Parked struct {
	ep   *lb.Endpoint
	sent int64 // unix nanoseconds, as given to lb.Endpoint.Sent
	up   *h2.ClientStream
	// mu guards timer and done; park holds it while it hands the stream
	// over and sets the timer.
	mu    sync.Mutex
	timer *time.Timer // fires expire after maxParked
	done  bool        // the wait was ended
}

var _ h2.Receiver = (*h2Parked)(nil)

// end ends the endpoint's wait for the answer once: head reports that the
// response headers arrived at now.
func (pk *h2Parked) end(now int64, head bool) {
	pk.mu.Lock()
	was := pk.done
	pk.done = true
	pk.timer.Stop()
	pk.mu.Unlock()
	if !was {
		pk.ep.Answered(pk.sent, now, head)
	}
}

// expire gives up on the answer after maxParked (the timer's goroutine).
func (pk *h2Parked) expire() {
	pk.up.Reset(http2.ErrCodeCancel)
	pk.end(0, false)
}

// OnResponse: the endpoint answered; nobody waits for the rest.
func (pk *h2Parked) OnResponse(up *h2.ClientStream, _ int, _ []hpack.HeaderField, _ bool) {
	now := time.Now().UnixNano()
	up.Reset(http2.ErrCodeCancel)
	pk.end(now, true)
}

// OnData cannot come before OnResponse, which resets the stream; bytes
// are granted back all the same, not to shrink the connection's window.
func (pk *h2Parked) OnData(up *h2.ClientStream, p []byte, _ bool) { up.Consumed(len(p)) }

// OnTrailers cannot come before OnResponse, which resets the stream.
func (pk *h2Parked) OnTrailers(*h2.ClientStream, []hpack.HeaderField) {}

// OnReset: the stream failed with no answer.
func (pk *h2Parked) OnReset(*h2.ClientStream, error) { pk.end(0, false) }

// OnWritable: the request was sent completely; nothing is left to write.
func (pk *h2Parked) OnWritable(*h2.ClientStream) {}
