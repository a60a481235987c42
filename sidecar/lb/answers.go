package lb

import (
	"sync/atomic"
	"time"
)

// Answers: how quickly an address starts answering. A Node.js instance
// whose event loop is blocked (a synchronous parse, a CPU quota spent, a
// stop-the-world pause) accepts requests and answers none of them until it
// runs again; a balancer that counts requests in flight keeps sending it
// its share meanwhile, and every one waits out the block. Strategies that
// opt in (NeedsAnswers, the least loaded strategy) see the block as it
// happens instead: two or more requests sent that have not received a
// response head, and no head received for several times the address's
// usual time to first byte.
//
// Only the wait for the response head counts: a long download or an event
// stream in flight is an answer, not a stall.

// Bounds of the unanswered time after which an address counts as not
// answering (Load.Unanswered): AnswerMultiplier times its usual time to
// first byte, within [MinUnanswered, MaxUnanswered].
const (
	AnswerMultiplier = 4
	MinUnanswered    = 5 * time.Millisecond
	MaxUnanswered    = time.Second
)

// answerState is an address's wait for response heads. Fields are
// separate atomics; a reader may see them mid-update, which costs at most
// one pick's precision.
type answerState struct {
	waiting  atomic.Int64 // requests sent whose response head has not arrived
	progress atomic.Int64 // unix nanoseconds: the last head, or when waiting left zero
	ttfb     atomic.Int64 // moving average of the time to first byte, nanoseconds
}

// NeedsAnswers reports whether pickers of b read the answer times (Sent,
// Answered): the proxy records them only for those, sparing the others'
// requests two clock reads.
func NeedsAnswers(b Builder) bool {
	n, ok := b.(interface{ NeedsAnswers() bool })
	return ok && n.NeedsAnswers()
}

// Sent records that a request was sent to e at now (unix nanoseconds) and
// waits for its response head. Every Sent must be paired with exactly one
// Answered. Nil-safe, never blocks or allocates.
func (e *Endpoint) Sent(now int64) {
	l := e.Load
	if l == nil {
		return
	}
	if l.answers.waiting.Add(1) == 1 {
		// The address was not owing an answer: its wait starts now, not
		// at its last head, however long ago that was.
		l.answers.progress.Store(now)
	}
}

// Answered ends the wait Sent began at sent: the response head arrived at
// now (head), or the attempt ended without one (an error, a timeout, a
// cancelled request), which is no sign of life.
func (e *Endpoint) Answered(sent, now int64, head bool) {
	l := e.Load
	if l == nil {
		return
	}
	a := &l.answers
	if head {
		a.progress.Store(now)
		d := max(now-sent, 0)
		if old := a.ttfb.Load(); old == 0 {
			a.ttfb.Store(d)
		} else {
			a.ttfb.Store(old + (d-old)/8)
		}
	}
	a.waiting.Add(-1)
}

// Unanswered reports whether the address owes at least two answers and
// has sent no response head for longer than AnswerLimit, at now (unix
// nanoseconds). False for nil. One request is never enough: a long
// request on a free event loop is not a block, and a request sent after
// it is answered.
func (l *Load) Unanswered(now int64) bool {
	if l == nil || l.answers.waiting.Load() < 2 {
		return false
	}
	return now-l.answers.progress.Load() > int64(l.AnswerLimit())
}

// AnswerLimit is how long the address may owe answers without sending a
// response head before it counts as not answering: AnswerMultiplier times
// its usual time to first byte, within [MinUnanswered, MaxUnanswered].
func (l *Load) AnswerLimit() time.Duration {
	var ttfb int64
	if l != nil {
		ttfb = l.answers.ttfb.Load()
	}
	return time.Duration(min(max(AnswerMultiplier*ttfb, int64(MinUnanswered)), int64(MaxUnanswered)))
}

// Waiting returns the requests sent to the address that have not received
// a response head; zero for nil.
func (l *Load) Waiting() int64 {
	if l == nil {
		return 0
	}
	return l.answers.waiting.Load()
}
