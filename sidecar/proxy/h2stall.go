package proxy

import (
	"time"

	"golang.org/x/net/http2/hpack"
)

// Stall detection on the frame-level HTTP/2 path (h2Fwd), as on the
// HTTP/1.1 path (stall.go): an attempt waiting for its response headers
// checks, once per stall threshold, whether its host answered anything
// meanwhile. The check rides the forwarder's one timer (rearm), so it
// costs no goroutine or timer of its own.

// watchStall starts the stall watch of the attempt whose request just went
// out completely on its stream (as on HTTP/1.1, after the body: a client
// stream still sending is not waiting for an answer).
func (fw *h2Fwd) watchStall() {
	now := time.Now()
	fw.sentAt = now
	fw.stallAt = time.Time{}
	if fw.a.cl.Stall.Disabled {
		return
	}
	fw.stallAt = now.Add(fw.host.stallThreshold(&fw.a.cl.Stall))
	fw.rearm()
}

// checkStall runs a due stall check at now. It reports whether the
// attempt's host was found stalled, in which case the attempt ended: an
// idempotent request went to another endpoint (attempt.again), others
// were answered 504 with the stalled mark.
func (fw *h2Fwd) checkStall(now time.Time) bool {
	if fw.stallAt.IsZero() || now.Before(fw.stallAt) {
		return false
	}
	fw.stallAt = time.Time{}
	if fw.relayed || fw.up == nil {
		return false
	}
	if !fw.host.checkStall(&fw.a.cl.Stall, fw.sentAt, now) {
		fw.stallAt = now.Add(fw.host.stallThreshold(&fw.a.cl.Stall))
		return false
	}
	fw.leaveStalled()
	return true
}

// leaveStalled ends the attempt on a stalled host and retries or answers.
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
