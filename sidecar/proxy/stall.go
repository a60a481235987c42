package proxy

import (
	"errors"
	"math/rand/v2"
	"os"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// Stuck endpoints. A Node.js instance whose event loop is blocked still
// accepts connections (the kernel's backlog) and answers nothing. Two
// defences keep it from taking the whole service down with it:
//
//   - a per-endpoint in-flight limit (route.Cluster.MaxRequestsPerEndpoint):
//     pick skips an endpoint at its limit, so requests hung on one endpoint
//     never fill the cluster's circuit breaker; a request is refused only
//     when every endpoint is full;
//   - stall detection (route.Cluster.Stall): a request waiting for its
//     response headers checks, once per stall threshold, whether its
//     endpoint has answered anything meanwhile. An endpoint with requests
//     in flight that completed none for the threshold (a multiple of its
//     recent peak latency, bounded) is marked stalled and gets no new
//     request until one completes on it. The waiting requests leave it: an
//     idempotent one is sent to another endpoint (a hedged retry on the
//     route's retry budget, or the default connect-retry budget), others
//     end with 504 and the access-log flag UST.
//
// A stalled endpoint is probed by one idempotent request per
// Stall.ProbeInterval; a response on it clears the mark.
//
// The check costs no goroutine or timer of its own: the wait for the
// first bytes of the response has a read deadline no later than the check
// time (conn.watchStall), and the watch ends once bytes arrive.

// Hedging (least loaded). The strategy knows within milliseconds that an
// endpoint stopped answering (lb.Load.Unanswered: two or more requests
// owed, no response head for a few of its usual times to first byte); a
// request already waiting on it would still wait out the whole block. An
// idempotent request that can be sent again checks, at that limit and
// again until the stall threshold, whether its endpoint stopped answering
// while another answers and queues no deeper; if so it is sent to another
// endpoint once (a hedged retry, on the route's retry budget or the
// connect-failure one), and the stall watch takes over for the rest. The
// first attempt is not cancelled: its connection is parked until the
// endpoint answers (or the stall threshold's bound passes), so that the
// endpoint keeps owing the answer and stays passed over meanwhile.
//
// Paths: this file's HTTP/1.1 path and the frame-level HTTP/2 path
// (h2stall.go: h2Fwd parks the first attempt's stream, not a connection)
// hedge; the net/http bridge between the protocols (h2Handler.roundTrip)
// has the stall watch (bridgeStall) but no hedging: the transport gives
// no way to keep an attempt's stream or connection once the request
// leaves it, so a request waiting on an instance that stopped answering
// leaves it at the stall threshold.

// maxQuickChecks bounds the early checks of one attempt (each a timer
// wake-up, only while it waits on an endpoint that answers nothing).
const maxQuickChecks = 32

// maxParked bounds how long a parked attempt's connection waits for the
// first byte of its answer.
const maxParked = route.DefaultStallMax

// mayHedge reports whether the attempt's request may leave an endpoint
// that stopped answering for another: least loaded clusters, idempotent
// requests that can be sent again, once per request, while a retry budget
// is left (attempt.again): a hedge with none would end the request with
// 504 where its first attempt may still be answered.
func (a *attempt) mayHedge() bool {
	return a.cl.TracksAnswers() && a.idempotent && a.replayable && !a.hedged && (a.retries > 0 || a.connects > 0)
}

// hedgeFrom reports whether the attempt waiting on e leaves it
// (shouldLeave), and then marks the request hedged (hedge).
func (a *attempt) hedgeFrom(e *lb.Endpoint, now int64) bool {
	if !a.shouldLeave(e, now) {
		return false
	}
	a.hedge()
	return true
}

// shouldLeave reports whether an attempt waiting on e should leave it: e
// stopped answering and another endpoint of the cluster answers and owes
// no more answers than e. When the others queue deeper, the instances are
// short of CPU rather than one of them stuck (on a machine they share, a
// blocked loop that burns a core starves the others), and a second copy
// of the request would only add to their queue: it waits.
func (a *attempt) shouldLeave(e *lb.Endpoint, now int64) bool {
	if !e.Load.Unanswered(now) {
		return false
	}
	owed := e.Load.Waiting()
	eps := a.cl.LBEndpoints()
	for i, o := range eps {
		if i == 64 {
			break // a large cluster: some other endpoint answers
		}
		if o != e && o.Healthy && o.Load.Waiting() <= owed && !o.Load.Unanswered(now) {
			return true
		}
	}
	return false
}

// hedge marks the request hedged (it leaves its endpoint for another
// once) and counts it (shoal_sidecar_hedged_requests_total).
func (a *attempt) hedge() {
	a.hedged = true
	a.cs.hedges.inc(a.cs.m.hedges, a.cs.name)
}

// park keeps the connection of an attempt that left a silent endpoint
// until the endpoint answers on it or maxParked passes, then records the
// answer (lb.Endpoint.Answered) and closes it. The connection is closed
// at once when the proxy shuts down.
func (p *Proxy) park(uc *upConn, e *lb.Endpoint, sent int64) {
	p.mu.Lock()
	if p.shutting.Load() {
		p.mu.Unlock()
		uc.close()
		e.Answered(sent, 0, false)
		return
	}
	p.parked[uc] = struct{}{}
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		uc.nc.SetReadDeadline(time.Now().Add(maxParked))
		var b [1]byte
		n, _ := uc.nc.Read(b[:])
		e.Answered(sent, time.Now().UnixNano(), n > 0)
		p.mu.Lock()
		delete(p.parked, uc)
		p.mu.Unlock()
		uc.close()
	}()
}

// doneGranularity bounds how often host.lastDone is written: a busy host
// costs one shared store per interval, not one per response.
const doneGranularity = int64(10 * time.Millisecond)

// onResponse records a response from h completed at now, d after its
// attempt started: the last completion time, the recent peak latency
// (decaying by 1/16 per doneGranularity with responses), and clears a
// stall mark.
func (h *host) onResponse(now time.Time, d time.Duration) {
	if p := h.peak.Load(); int64(d) > p {
		h.peak.Store(int64(d))
	}
	n := now.UnixNano()
	if n-h.lastDone.Load() > doneGranularity {
		h.lastDone.Store(n)
		if p := h.peak.Load(); p > int64(d) {
			h.peak.Store(max(int64(d), p-p/16))
		}
	}
	if h.stalled.Load() && h.stalled.CompareAndSwap(true, false) {
		h.cluster.stalled.Add(-1)
	}
}

// stallThreshold is how long h may hold requests without completing any
// before it counts as stalled.
func (h *host) stallThreshold(s *route.StallDetection) time.Duration {
	t := time.Duration(h.peak.Load()) * time.Duration(s.Multiplier)
	return min(max(t, s.Min), s.Max)
}

// checkStall is called by an attempt on h that was sent at sent and has
// received nothing by now. It reports whether h is stalled, marking it
// when it has more than one request in flight and completed none for
// the threshold. A single slow request is never enough: a long request
// on a free event loop is not a stall, and requests sent after it
// complete.
func (h *host) checkStall(s *route.StallDetection, sent, now time.Time) bool {
	if h.stalled.Load() {
		return true
	}
	thr := h.stallThreshold(s)
	if now.Sub(sent) < thr || now.UnixNano()-h.lastDone.Load() < int64(thr) || h.load.inProgress.Load() < 2 {
		return false
	}
	h.markStalled(now)
	return true
}

// markStalled marks h stalled at now, unless it is already.
func (h *host) markStalled(now time.Time) {
	if h.stalled.CompareAndSwap(false, true) {
		h.stalledAt.Store(now.UnixNano())
		cs := h.cluster
		cs.stalled.Add(1)
		cs.stalls.inc(cs.m.stalls, cs.name)
	}
}

// stalledHeader marks a 504 a sidecar answered because its endpoint was
// stalled (a sidecar contract): the calling sidecar marks that endpoint
// (the peer sidecar) stalled and sends an idempotent request elsewhere,
// as if it had seen the stall itself. Through an inbound sidecar (mTLS),
// the stuck app is behind the endpoint the caller sees.
const stalledHeader = "X-Shoal-Stalled"

// stalledHeaderLower is stalledHeader for equalFold.
const stalledHeaderLower = "x-shoal-stalled"

// stalledReply reports whether the response just parsed is another
// sidecar's 504 for a stalled endpoint (stalledHeader).
func (c *conn) stalledReply() bool {
	if c.resp.code != 504 {
		return false
	}
	for i := range c.resp.headers {
		if equalFold(c.resp.headers[i].Name, stalledHeaderLower) {
			return true
		}
	}
	return false
}

// takesRequest reports whether a stalled h may take a request: an
// idempotent one, once per probe interval, as a probe.
func (h *host) takesRequest(s *route.StallDetection, idempotent bool) bool {
	if !h.stalled.Load() {
		return true
	}
	if !idempotent {
		return false
	}
	at := h.stalledAt.Load()
	now := time.Now().UnixNano()
	return now-at >= int64(s.ProbeInterval) && h.stalledAt.CompareAndSwap(at, now)
}

// atLimit reports whether h has MaxRequestsPerEndpoint attempts in flight.
func (a *attempt) atLimit(h *host) bool {
	return h.load.inProgress.Load() >= int64(a.cl.MaxRequestsPerEndpoint)
}

// scan looks for an endpoint pick did not offer within its draws: healthy,
// not ejected, tried, full or stalled. It runs only after pick skipped a
// full or stalled endpoint, so that with more endpoints than
// lb.MaxExcluded a request is refused only when every endpoint is full.
func (a *attempt) scan() (*lb.Endpoint, *host) {
	eps := a.cl.LBEndpoints()
	n := len(eps)
	if n == 0 || n != len(a.hosts) {
		return nil, nil
	}
	first := int(uint64(a.start.UnixNano()) % uint64(n))
	for i := range n {
		j := (first + i) % n
		h, e := a.hosts[j], eps[j]
		if e.Healthy && h.available() && !a.triedHost(h) && !a.atLimit(h) && !h.stalled.Load() {
			return e, h
		}
	}
	return nil, nil
}

// watchStall starts the stall watch of an attempt on e (h) sent at now,
// after waitDeadline, unless the attempt's own deadline comes first; its
// first check comes at e's answer limit when the request may hedge.
func (c *conn) watchStall(uc *upConn, a *attempt, e *lb.Endpoint, h *host, now time.Time) {
	uc.stallAt, uc.quick = time.Time{}, 0
	if a.cl.Stall.Disabled {
		return
	}
	check, quick := a.firstCheck(e, h, now)
	if due := uc.readDue(now); due.IsZero() || check.Before(due) {
		uc.stallAt, uc.quick = check, quick
	}
}

// awaitResponse sends the request and waits for the first bytes of the
// answer (flushAndFill), running the watch's check each time its time
// comes. stalled reports that the attempt left e while nothing had
// arrived: h was marked stalled, or the request hedges. The watch ends
// when it returns.
func (c *conn) awaitResponse(a *attempt, uc *upConn, e *lb.Endpoint, h *host, sent time.Time) (werr, rerr error, stalled bool) {
	defer func() { uc.stallAt, uc.quick = time.Time{}, 0 }()
	uc.armRead(sent, uc.readDue(sent))
	werr, rerr = uc.flushAndFill()
	for werr == nil && errors.Is(rerr, os.ErrDeadlineExceeded) && len(uc.br.buffered()) == 0 {
		now := time.Now()
		check := uc.stallAt
		uc.stallAt = time.Time{}
		if due := uc.readDue(sent); !due.IsZero() && !now.Before(due) {
			break // the attempt's own deadline
		}
		switch {
		case check.IsZero():
		case now.Before(check):
			uc.stallAt = check // an earlier deadline passed
		default:
			next, leave := a.checkWatch(uc, e, h, sent, now)
			if leave {
				return nil, rerr, true
			}
			uc.stallAt = next
		}
		uc.armRead(now, uc.readDue(sent))
		rerr = uc.fillMore()
	}
	return werr, rerr, false
}

// checkWatch is the watch's check at now of an attempt on e (h) sent at
// sent: leave reports that the attempt leaves e (it hedges, or h is
// stalled); otherwise next is the time of the next check.
func (a *attempt) checkWatch(uc *upConn, e *lb.Endpoint, h *host, sent, now time.Time) (next time.Time, leave bool) {
	if uc.quick == 0 {
		return now.Add(h.stallThreshold(&a.cl.Stall)), h.checkStall(&a.cl.Stall, sent, now)
	}
	uc.quick--
	if a.hedgeFrom(e, now.UnixNano()) {
		return time.Time{}, true
	}
	next, uc.quick = a.nextCheck(e, h, sent, now, uc.quick)
	return next, false
}

// firstCheck returns the time of the first check of a stall watch on e
// (h) sent at now, and the early checks it has: at e's answer limit when
// the request may hedge, else at the stall threshold.
func (a *attempt) firstCheck(e *lb.Endpoint, h *host, now time.Time) (check time.Time, quick int) {
	check = now.Add(h.stallThreshold(&a.cl.Stall))
	if a.mayHedge() {
		if q := now.Add(e.Load.AnswerLimit()); q.Before(check) {
			return q, maxQuickChecks
		}
	}
	return check, 0
}

// nextCheck returns the time of the check after an early one at now of a
// watch on e (h) sent at sent, with quick early checks left: early again
// while some are left and e's answer limit comes before the stall
// threshold, else at the threshold (and none are left).
func (a *attempt) nextCheck(e *lb.Endpoint, h *host, sent, now time.Time, quick int) (time.Time, int) {
	thr := sent.Add(h.stallThreshold(&a.cl.Stall))
	if q := now.Add(e.Load.AnswerLimit()); quick > 0 && q.Before(thr) {
		return q, quick
	}
	return thr, 0
}

// warm reports whether h takes this pick under slow start: always once it
// has warmed up, otherwise with probability s.Factor (a draw it declines
// goes to the picker's next choice, so its share scales by about that
// factor whatever the strategy).
func (h *host) warm(s *route.SlowStart) bool {
	joined := h.joined.Load()
	if joined == 0 {
		return true
	}
	elapsed := time.Duration(time.Now().UnixNano() - joined)
	f := s.Factor(elapsed)
	if f >= 1 {
		h.joined.CompareAndSwap(joined, 0)
		return true
	}
	return rand.Float64() < f
}
