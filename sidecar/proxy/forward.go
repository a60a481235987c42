package proxy

import (
	"errors"
	"os"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/accesslog"
	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// outcome is the result of one upstream attempt.
type outcome uint8

const (
	relayed       outcome = iota // a response went to the client (maybe cut short)
	connectFailed                // nothing was sent
	reset                        // the upstream failed before any response
	timedOut                     // the attempt's deadline passed before a response
	retryStatus                  // a retriable status was received and discarded
	stale                        // a reused connection failed before any response
	clientFailed                 // the client's body was malformed or cut
	stalled                      // the host was marked stalled while nothing had arrived
	connOverflow                 // no connection: the cluster is at MaxConnections
)

// attempt is the per-request retry state shared by forward (HTTP/1.1) and
// h2Handler.roundTrip (net/http transports): budgets, deadlines, the
// picker input and the hosts already tried. Owned by one request.
type attempt struct {
	rt         *route.Route // nil: defaults (no timeout, connect retries only)
	cl         *route.Cluster
	cs         *clusterState
	hosts      []*host
	start      time.Time
	timeout    time.Duration // the route timeout; zero: none
	deadline   time.Time     // zero: none (yet)
	replayable bool          // the request can be sent again
	retries    int           // policy retries left
	connects   int           // connect-failure retries left
	last       int           // the status for the client when no attempt is left
	idempotent bool          // the request's method is (a stalled host may be probed)
	hedged     bool          // the request left an endpoint that stopped answering (mayHedge)
	full       bool          // the last pick skipped a host at its in-flight limit
	// retrySlot is set while the request holds one of its cluster's
	// MaxRetries slots (from its first policy retry until release).
	retrySlot bool

	info   lb.PickInfo // hash key and excluded (tried) addresses
	tried  [lb.MaxExcluded]*host
	nTried int
}

// init prepares a for a request to cl that started at start.
func (a *attempt) init(b *binding, rt *route.Route, cl *route.Cluster, start time.Time, connects int) {
	*a = attempt{rt: rt, cl: cl, cs: b.clusters[cl.Index], hosts: b.hosts[cl.Index], start: start, connects: connects, last: 502}
	if rt != nil {
		a.timeout = rt.Timeout
		a.startTimer(start)
		a.retries = rt.Retry.Retries()
	}
}

// startTimer starts the route timeout at now unless it runs already. The
// HTTP/1.1 path starts it once the request is completely received, as
// Envoy does, so that an upload is not bounded by it (see conn.dispatch);
// net/http transports (h2c, gRPC) start it with the request.
func (a *attempt) startTimer(now time.Time) {
	if a.timeout > 0 && a.deadline.IsZero() {
		a.deadline = now.Add(a.timeout)
	}
}

func (a *attempt) policy() *route.RetryPolicy {
	if a.rt == nil {
		return nil
	}
	return a.rt.Retry
}

// forward sends the request to the cluster with retries and relays the
// response. It returns the status code seen by the client and whether the
// client connection stays open.
func (c *conn) forward(a *attempt) (code int, keep bool) {
	for {
		e, h := a.pick()
		switch {
		case h == nil && len(a.cl.Endpoints) == 0:
			c.al.flags |= accesslog.NoHealthyUpstream
			return 503, c.localReply(503, noInstanceMessage(a.cl.Name))
		case h == nil:
			code, msg, flag := a.noPick()
			c.al.flags |= flag
			return code, c.localReply(code, msg)
		case a.triedHost(h):
			c.al.flags |= accesslog.UpstreamRetryLimitExceeded
			return a.last, c.localReply(a.last, failureMessage(a.last))
		}
		a.markTried(h)
		c.al.upstream = h.addr
		out, code, keep := c.try(a, e, h)
		switch out {
		case relayed:
			c.al.flags &^= retriedFlags
			return code, keep
		case clientFailed:
			return code, false
		case connOverflow:
			c.al.flags |= accesslog.UpstreamOverflow
			return 503, c.localReply(503, "upstream overflow (connection limit)")
		}
		c.al.flags |= outcomeFlag(out)
		if !a.again(out, code, h, c.req.idempotent()) {
			if a.nTried > 1 {
				c.al.flags |= accesslog.UpstreamRetryLimitExceeded
			}
			return a.last, c.localReply(a.last, failureMessage(a.last))
		}
	}
}

// again records the failed attempt on h (outcome out; code for
// retryStatus) and reports whether the request goes to another host. When
// it does not, a.last is the status for the client. idempotent is the
// request method's (RFC 9110 9.2.2).
func (a *attempt) again(out outcome, code int, h *host, idempotent bool) bool {
	switch out {
	case connectFailed:
		h.onFailure(&a.cl.Outlier, len(a.hosts))
		a.last = 502
		switch {
		case a.connects > 0:
			a.connects--
			return true
		case a.retries <= 0:
			return false
		}
	case timedOut, reset:
		h.onFailure(&a.cl.Outlier, len(a.hosts))
		a.last = 502
		if out == timedOut {
			a.last = 504
		}
		switch {
		case a.mayRetry():
		case out == reset && a.mayRetryIdempotent(idempotent):
			// Like nginx's proxy_next_upstream error: an idempotent
			// request that got no response is safe to send to another
			// host (RFC 9110 9.2.2) even without a route policy, so a
			// GET in flight on a crashed instance is not lost. It
			// spends the connect-failure budget.
			a.connects--
			return true
		default:
			return false
		}
	case stalled:
		// A hedged retry: the request is still in flight on a host that
		// answers nothing. Only an idempotent one may be sent again.
		a.last = 504
		switch {
		case !idempotent || !a.replayable || (!a.deadline.IsZero() && !time.Now().Before(a.deadline)):
			return false
		case a.retries > 0:
			// On the route's budget but not under max_retries: a stall
			// leaves many requests waiting at once, and every proxy route
			// has a policy (the control plane's default retries connect
			// failures), so Envoy's default of 3 retries in flight would
			// fail the rest of them (issue 17: none may be lost).
			a.retries--
			return true
		case a.connects > 0:
			a.connects--
			return true
		default:
			return false
		}
	case retryStatus:
		a.last = code
	}
	if !a.takeRetrySlot() {
		// max_retries bounds the route policy's retries, not the safety
		// net every request has without a policy: an idempotent request
		// reset before its answer (a host killed under it) still goes to
		// another host on the connect-failure budget. When a host dies
		// many requests are reset at once; mayRetry saw a free slot, a
		// concurrent one took it (the demo's kill -9 lost 1-5 GETs).
		if out == reset && a.mayRetryIdempotent(idempotent) {
			a.connects--
			return true
		}
		return false
	}
	a.retries--
	return true
}

// takeRetrySlot reports whether a policy retry may start under the
// cluster's circuit breaker on retries in flight (MaxRetries, Envoy's
// max_retries): a request takes a slot at its first policy retry and
// holds it until release.
func (a *attempt) takeRetrySlot() bool {
	if a.retrySlot {
		return true
	}
	if int(a.cs.retrying.Add(1)) > a.cl.MaxRetries {
		a.cs.retrying.Add(-1)
		return false
	}
	a.retrySlot = true
	return true
}

// retrySlotFree reports whether takeRetrySlot would succeed now.
func (a *attempt) retrySlotFree() bool {
	return a.retrySlot || int(a.cs.retrying.Load()) < a.cl.MaxRetries
}

// release gives back the request's retry slot; every path that inits an
// attempt calls it when the request ends.
func (a *attempt) release() {
	if a.retrySlot {
		a.retrySlot = false
		a.cs.retrying.Add(-1)
	}
}

// mayRetry reports whether a failed attempt without a response may be
// retried under the route policy.
func (a *attempt) mayRetry() bool {
	if a.retries <= 0 || !a.replayable || !a.policy().RetryReset() || !a.retrySlotFree() {
		return false
	}
	return a.deadline.IsZero() || time.Now().Before(a.deadline)
}

// mayRetryIdempotent reports whether an idempotent request whose attempt
// was reset before a response may go to another host on the default
// (connect-failure) budget.
func (a *attempt) mayRetryIdempotent(idempotent bool) bool {
	if a.connects <= 0 || !a.replayable || !idempotent {
		return false
	}
	return a.deadline.IsZero() || time.Now().Before(a.deadline)
}

// mayRetryStatus reports whether a response status should be retried on
// another host instead of being relayed.
func (a *attempt) mayRetryStatus(code int) bool {
	return a.mayRetryResponse() && a.policy().RetryStatus(code)
}

// mayRetryGRPC reports whether a trailers-only gRPC response with status
// code should be retried on another host instead of being relayed.
func (a *attempt) mayRetryGRPC(code int) bool {
	return a.mayRetryResponse() && a.policy().RetryGRPCStatus(code)
}

// mayRetryResponse reports whether a received response may be dropped for
// another attempt: budget left, request replayable, an untried host left.
func (a *attempt) mayRetryResponse() bool {
	return a.retries > 0 && a.replayable && a.nTried < len(a.hosts) && a.retrySlotFree()
}

func failureMessage(code int) string {
	switch code {
	case 504:
		return "upstream request timeout"
	case 502:
		return "upstream connect error or disconnect/reset before headers"
	}
	return "upstream failed"
}

// pick chooses an endpoint that is neither ejected, tried, at its
// in-flight limit nor stalled, if the picker offers one within
// lb.MaxExcluded draws (or scan finds one after skipping full or stalled
// ones). Otherwise it returns the last ejected, tried or stalled endpoint
// drawn, never a full one: nil with a.full set means every endpoint
// offered is at its limit.
func (a *attempt) pick() (*lb.Endpoint, *host) {
	var last *lb.Endpoint
	var lastHost *host
	a.full = false
	skipped := false
	for range lb.MaxExcluded {
		e, err := a.cl.Pick(&a.info)
		if err != nil {
			break
		}
		h := a.hosts[route.EndpointOf(e).Index]
		switch {
		case !h.available() || a.triedHost(h):
			last, lastHost = e, h
		case a.atLimit(h):
			a.full, skipped = true, true
		case !h.takesRequest(&a.cl.Stall, a.idempotent):
			last, lastHost, skipped = e, h, true
		case !h.warm(&a.cl.SlowStart):
			last, lastHost = e, h
		default:
			return e, h
		}
		a.info.Exclude(e.Address)
	}
	if skipped {
		if e, h := a.scan(); h != nil {
			return e, h
		}
	}
	return last, lastHost
}

// noPick is the answer when pick found no endpoint although the cluster
// has some: 503 as Envoy answers, "upstream overflow" (UO) when it skipped
// endpoints at their in-flight limit, else "no healthy upstream" (UH):
// every endpoint is unhealthy, ejected or stalled.
func (a *attempt) noPick() (code int, msg string, flag accesslog.Flags) {
	if a.full {
		return 503, "upstream overflow (every endpoint at its in-flight limit)", accesslog.UpstreamOverflow
	}
	return 503, "no healthy upstream", accesslog.NoHealthyUpstream
}

func (a *attempt) triedHost(h *host) bool {
	for i := 0; i < a.nTried; i++ {
		if a.tried[i] == h {
			return true
		}
	}
	return false
}

func (a *attempt) markTried(h *host) {
	if a.nTried < len(a.tried) {
		a.tried[a.nTried] = h
		a.nTried++
	}
	a.info.Exclude(h.addr)
}

// try runs one attempt against h, redoing it once on a fresh connection
// when a pooled connection turns out to be stale.
func (c *conn) try(a *attempt, e *lb.Endpoint, h *host) (outcome, int, bool) {
	h.countRequest(c.p.metrics)
	start := time.Now()
	h.load.begin()
	out, code, keep := c.tryOn(a, e, h, start)
	now := time.Now()
	if uc := c.idle; uc != nil {
		c.idle = nil
		h.pool.put(uc, now, c.p.cfg.MaxIdlePerHost)
	}
	if out == relayed {
		c.end = now // forward returns at once
	}
	d := now.Sub(start)
	h.load.end(d, failedAttempt(out, code))
	if out == relayed || out == retryStatus {
		h.onResponse(now, d)
	}
	return out, code, keep
}

// tryOn is try's attempt; start is its clock reading, the first
// exchange's start (a clock read costs ~50 ns on a VM: a request reads
// it about ten times).
func (c *conn) tryOn(a *attempt, e *lb.Endpoint, h *host, start time.Time) (outcome, int, bool) {
	for fresh := false; ; fresh = true {
		now := start
		if fresh {
			now = time.Now()
		}
		var uc *upConn
		if !fresh {
			// A request with a body may write part of it before the
			// exchange's own check (quiet): check the connection first.
			uc = h.pool.get(now, c.p.cfg.UpstreamIdleTimeout, !c.redoableOnStale(a) || c.req.hasBody())
		}
		reused := uc != nil
		if uc == nil {
			if !a.cs.roomForConn(a.cl.MaxConnections) {
				return connOverflow, 503, false
			}
			var err error
			if uc, err = c.p.dial(h, e, a.cl.ConnectTimeout, a.deadline); err != nil {
				return connectFailed, 502, false
			}
		}
		uc.reused = reused
		e.Begin()
		c.resp.hasLoad = false
		out, code, keep := c.exchange(a, uc, e, h, reused, now)
		e.End()
		if c.resp.hasLoad {
			e.ReportLoad(c.resp.load, now) // least_loaded's weights (issue 17)
		}
		if out != stale {
			return out, code, keep
		}
		if fresh {
			return reset, 502, false
		}
	}
}

// exchange writes the request on uc and relays the response.
func (c *conn) exchange(a *attempt, uc *upConn, e *lb.Endpoint, h *host, reused bool, now time.Time) (outcome, int, bool) {
	streamed := !a.replayable && c.req.hasBody()
	if streamed {
		// The route and per-try timeouts start once the body is received;
		// meanwhile the upstream must take it with progress.
		uc.idleDeadline(c.p.cfg.StreamIdleTimeout)
	} else {
		c.waitDeadline(uc, a, now)
	}
	uc.w.early = 0
	uc.bw.Write(c.out)
	if a.replayable {
		uc.bw.Write(c.replay)
	} else if streamed {
		if err := c.copyBody(uc.bw); err != nil {
			uc.close()
			var we writeError
			if errors.As(err, &we) {
				return c.failAfterBody(reset)
			}
			c.reject(errBadChunk)
			return clientFailed, 400, false
		}
		now = time.Now()
		a.startTimer(now)
		c.waitDeadline(uc, a, now)
	}
	c.watchStall(uc, a, e, h, now)
	track := a.cl.TracksAnswers()
	if track {
		e.Sent(now.UnixNano())
	}
	werr, rerr, st := c.awaitResponse(a, uc, e, h, now)
	switch {
	case st && track && a.hedged:
		c.p.park(uc, e, now.UnixNano()) // e owes the answer until it gives it
		return stalled, 504, false
	case track:
		e.Answered(now.UnixNano(), time.Now().UnixNano(), !st && werr == nil && rerr == nil)
	}
	if st || werr != nil || rerr != nil {
		uc.close()
		if st {
			return stalled, 504, false
		}
		if werr != nil {
			return c.upstreamError(a, werr, reused, nil)
		}
		return c.upstreamError(a, rerr, reused, uc)
	}
	head, err := c.readResponseHead(uc)
	if err != nil {
		uc.close()
		return c.upstreamError(a, err, reused, uc)
	}
	if err := parseResponse(&c.resp, head); err != nil || c.resp.code == 101 {
		// A 101 answers only an upgrade, which this path never forwards:
		// what follows it is another protocol, never a pooled HTTP/1.1
		// connection's next response.
		uc.close()
		h.onFailure(&a.cl.Outlier, len(a.hosts))
		return relayed, 502, c.localReply(502, "malformed upstream response")
	}
	// The backend's load report is for this proxy's balancer; it leaves
	// the mesh (to the app or at the edge) without it. Inbound, it goes
	// on to the caller's sidecar.
	c.resp.stripLoad = c.mode.Kind != Inbound
	code := c.resp.code
	if code >= 500 {
		h.on5xx(&a.cl.Outlier, len(a.hosts))
	} else {
		h.onSuccess()
	}
	if a.mayRetryStatus(code) {
		uc.close()
		return retryStatus, code, false
	}
	if c.stalledReply() {
		uc.close()
		h.markStalled(time.Now())
		return stalled, 504, false
	}
	// The route and per-try timeouts end with the response headers (as
	// Envoy's for streamed responses): a download or an event stream
	// longer than them goes on while it makes progress.
	uc.idleDeadline(c.p.cfg.StreamIdleTimeout)
	keep := c.relay(uc)
	return relayed, code, keep
}

// failAfterBody handles an upstream failure once the client's body was
// consumed: the request cannot be resent.
func (c *conn) failAfterBody(out outcome) (outcome, int, bool) {
	return relayed, 502, c.localReply(502, failureMessage(502))
}

// redoableOnStale reports whether the request may be redone on a fresh
// connection when a pooled one turns out to be stale. Only requests that
// may not be redone, or that carry a body, pay for checking an idle
// connection before use (a non-blocking peek: one syscall and a few
// allocations); others are checked inside the exchange's raw callback
// (quiet: one read, no allocation), so the GET fast path stays
// allocation-free.
func (c *conn) redoableOnStale(a *attempt) bool {
	return a.replayable && (c.req.idempotent() || a.policy().RetryReset())
}

// upstreamError classifies a failure before any response: stale pooled
// connection (nothing received), timeout or reset.
func (c *conn) upstreamError(a *attempt, err error, reused bool, uc *upConn) (outcome, int, bool) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return timedOut, 504, false
	}
	nothing := uc == nil || len(uc.br.buffered()) == 0 && !errors.Is(err, errUnexpectedEOF)
	if reused && nothing && c.redoableOnStale(a) {
		return stale, 502, false
	}
	if c.bodyConsumed && !a.replayable {
		return c.failAfterBody(reset)
	}
	return reset, 502, false
}

// readResponseHead reads the final response head, skipping interim 1xx
// responses other than 101 (the proxy answers Expect itself).
func (c *conn) readResponseHead(uc *upConn) ([]byte, error) {
	for {
		head, err := uc.br.head(c.p.cfg.MaxHeaderBytes, c.p.cfg.MaxHeaderBytes, nil)
		if err != nil {
			return nil, err
		}
		if len(head) > 12 && head[9] == '1' && string(head[9:12]) != "101" {
			continue
		}
		return head, nil
	}
}

// waitDeadline bounds the wait for the response headers of an attempt
// started at now: the route and per-try timeouts (tryDeadline), or the
// stream idle timeout when neither is set.
func (c *conn) waitDeadline(uc *upConn, a *attempt, now time.Time) {
	if d := a.tryDeadline(now); !d.IsZero() {
		uc.setDeadline(d)
		return
	}
	uc.idleDeadline(c.p.cfg.StreamIdleTimeout)
}

// tryDeadline is the earlier of the route deadline and the per-try one.
func (a *attempt) tryDeadline(now time.Time) time.Time {
	p := a.policy()
	if p == nil || p.PerTryTimeout <= 0 {
		return a.deadline
	}
	d := now.Add(p.PerTryTimeout)
	if a.deadline.IsZero() || d.Before(a.deadline) {
		return d
	}
	return a.deadline
}

// relay writes the response head and body to the client and leaves the
// upstream connection in c.idle for try to pool when it can be reused. It
// reports whether the client connection stays open.
func (c *conn) relay(uc *upConn) bool {
	head := string(c.req.method) == "HEAD"
	fr := c.resp.framing(head)
	closeClient := c.req.closeConn || c.p.shutting.Load()
	chunked := false
	if fr == frameChunked || fr == frameClose {
		if c.req.minor == 1 {
			chunked = true
		} else {
			closeClient = true
		}
	}
	c.resp.writeHead(c.bw, fr, chunked, closeClient, c.req.minor == 0 && !closeClient)
	var err error
	switch fr {
	case frameLength:
		err = copyN(c.bw, &uc.br, c.resp.contentLength)
	case frameChunked:
		err = copyChunked(c.bw, &uc.br, chunked)
	case frameClose:
		err = copyUntilEOF(c.bw, &uc.br, chunked)
	}
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil || fr == frameClose || c.resp.closeConn || len(uc.br.buffered()) > 0 {
		uc.close()
	} else {
		uc.setDeadline(time.Time{})
		c.idle = uc
	}
	return err == nil && !closeClient
}
