// Package leastloaded implements the least loaded strategy (issue 17):
// endpoints are weighted by the load they report themselves on responses
// (ORCA endpoint-load-metrics, see lb.ParseORCA and Endpoint.ReportLoad),
// with gRFC A58's formula, blackout and expiration, and each pick is the
// less busy of two candidates drawn in proportion to those weights, busy
// meaning requests this sidecar has in flight to it per unit of weight.
//
// Why both: the weights come from the instance, so they carry its whole
// load (every caller's share, and work no proxy sees, such as a blocked
// event loop); the in-flight counts are local and immediate, so a burst
// does not pile onto one instance between reports. Power of two choices
// keeps many sidecars from herding onto the same "least loaded" instance,
// which a global shortest-queue pick on shared numbers would do.
//
// This is the sidecar's reading of Envoy's client_side_weighted_round_robin
// policy, which the control plane emits for least_loaded clusters so that
// Envoy and grpc-go (A58) weigh the same reports.
package leastloaded

import (
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/internal/wrand"
)

// Name is the registered strategy name.
const Name = lb.LeastLoaded

// Replaced in tests.
var (
	randUint64 = rand.Uint64
	timeNow    = time.Now
)

// weightScale is the integer weight of the heaviest endpoint; others are
// scaled to it (at least 1), keeping a 1:10000 dynamic range.
const weightScale = lb.MaxWeight

// maxWeightRatio bounds how much lighter than the heaviest a reported
// weight may make an endpoint: with weights 4:1 the heavy one takes up to
// three more requests in flight before the light one gets one. An A58
// weight, rps / utilization, is an instance's capacity only when its
// utilization grows with its traffic from zero; an instance with load of
// its own (a timer that blocks its loop 150 ms a second, a background job)
// reports utilization 0.15 at 1 rps, a weight a hundred times too light,
// gets no traffic because of it and cannot report better. Unbounded, a
// heavy endpoint then queued ~80 requests before the light one got one
// (bench/run.sh --lb, issue 17).
const maxWeightRatio = 4

// maxDistinct bounds the candidates (excluded ones included) one pick
// draws; when all it drew are excluded the picker falls back to a scan.
const maxDistinct = 8

// Builder builds least loaded pickers. The zero value is ready to use.
type Builder struct{}

var _ lb.Builder = Builder{}

// NeedsAnswers implements lb.NeedsAnswers: draw passes over an endpoint
// that owes answers it does not give (lb.Load.Unanswered).
func (Builder) NeedsAnswers() bool { return true }

// Name implements lb.Builder.
func (Builder) Name() string { return Name }

// Build implements lb.Builder.
func (Builder) Build(eps []*lb.Endpoint, cfg lb.Config) lb.Picker { return New(eps, cfg) }

// Picker is a least loaded picker over a fixed endpoint set. Pick is safe
// for concurrent use and never blocks; it allocates only when it
// recomputes the weights, at most once per WeightUpdatePeriod.
type Picker struct {
	eps []*lb.Endpoint
	cfg lb.LeastLoadedConfig

	// snap is the current weights; replaced when older than
	// cfg.WeightUpdatePeriod by the Pick that wins mu.TryLock.
	snap atomic.Pointer[snapshot]
	// mu serialises rebuilds; Pick never waits on it.
	mu sync.Mutex
}

// snapshot is an immutable set of weights, parallel to Picker.eps.
type snapshot struct {
	at      int64 // unix nanoseconds
	weights []uint32
	sampler *wrand.Sampler
}

// New returns a picker over the eligible endpoints of eps.
func New(eps []*lb.Endpoint, cfg lb.Config) *Picker {
	elig, _ := lb.Eligible(eps, cfg.PanicThreshold)
	p := &Picker{eps: elig, cfg: cfg.LeastLoaded.WithDefaults()}
	p.snap.Store(p.build(timeNow()))
	return p
}

// Weights returns the integer weights the picker currently samples by,
// parallel to the eligible endpoints, for /clusters and tests. The slice
// must not be modified.
func (p *Picker) Weights() []uint32 { return p.current(timeNow()).weights }

// WeightsByAddress returns the current weights by endpoint address, for
// /clusters: how the picker weighs each eligible endpoint now.
func (p *Picker) WeightsByAddress() map[string]uint32 {
	ws := p.current(timeNow()).weights
	m := make(map[string]uint32, len(ws))
	for i, e := range p.eps {
		m[e.Address] = ws[i]
	}
	return m
}

// Pick implements lb.Picker: the endpoint with the least expected wait
// ((requests in flight + 1) / weight) of ChoiceCount distinct candidates
// drawn in proportion to the reported weights, ties broken at random,
// avoiding excluded addresses while another exists.
func (p *Picker) Pick(info *lb.PickInfo) (*lb.Endpoint, error) {
	if len(p.eps) == 0 {
		return nil, lb.ErrNoEndpoint
	}
	if !info.HasExclusions() {
		info = nil
	}
	now := timeNow()
	s := p.current(now)
	if i := p.draw(s, info, now.UnixNano()); i >= 0 {
		return p.eps[i], nil
	}
	for _, e := range p.eps { // every draw excluded: the first that is not
		if !info.IsExcluded(e.Address) {
			return e, nil
		}
	}
	return p.eps[s.sampler.Index(randUint64())], nil
}

// current returns the weights, rebuilding them when they are older than
// the update period and no other Pick is rebuilding.
func (p *Picker) current(now time.Time) *snapshot {
	s := p.snap.Load()
	if now.UnixNano()-s.at < int64(p.cfg.WeightUpdatePeriod) || !p.mu.TryLock() {
		return s
	}
	defer p.mu.Unlock()
	if s = p.snap.Load(); now.UnixNano()-s.at < int64(p.cfg.WeightUpdatePeriod) {
		return s
	}
	s = p.build(now)
	p.snap.Store(s)
	return s
}

// build computes weights at now (gRFC A58): each endpoint's ORCA weight,
// at least 1/maxWeightRatio of the heaviest; endpoints without one (no
// report yet, in blackout, expired) take the mean of the others; with no
// weight at all, the static weights.
func (p *Picker) build(now time.Time) *snapshot {
	raw := make([]float64, len(p.eps))
	var sum, maxW float64
	n := 0
	for i, e := range p.eps {
		if w := e.Load.ORCAWeight(now, p.cfg); w > 0 {
			raw[i] = w
			sum += w
			maxW = max(maxW, w)
			n++
		}
	}
	ws := make([]uint32, len(p.eps))
	for i, e := range p.eps {
		switch {
		case n == 0:
			ws[i] = max(1, e.EffectiveWeight()) // IndexExcluding needs a positive weight left
			continue
		case raw[i] == 0:
			raw[i] = sum / float64(n)
		}
		ws[i] = uint32(max(weightScale/maxWeightRatio, raw[i]/maxW*weightScale))
	}
	return &snapshot{at: now.UnixNano(), weights: ws, sampler: wrand.New(ws)}
}

// draw returns the index of the best of ChoiceCount distinct candidates
// drawn in proportion to the weights without replacement (an excluded one
// is set aside and another drawn), or -1. Best is the least expected wait,
// (in flight + 1) / weight: the weight is the rate the instance serves per
// unit of its utilization, so a request queued behind k others waits about
// k+1 of its service times, and a lighter instance's are longer. This is
// the dynamic weight Envoy's least request uses for unequal weights
// (weight / (active_requests + 1), active_request_bias 1).
//
// Distinct candidates matter with few endpoints: drawn with replacement, a
// stalled instance is both candidates with the square of its share and is
// then picked however many requests it holds (1 in 9 picks for one of
// three equal instances, and each waits out the stall); with two distinct
// candidates it gets a request only when its expected wait is the smaller.
func (p *Picker) draw(s *snapshot, info *lb.PickInfo, now int64) int {
	best, ties := -1, 0
	var bestLoad, bestWeight uint64
	bestMute := false
	var drawn [maxDistinct]int // sorted ascending, for IndexExcluding
	n := 0
	for c := 0; c < p.cfg.ChoiceCount && n < min(len(p.eps), maxDistinct); {
		i := s.sampler.IndexExcluding(randUint64(), drawn[:n])
		j, _ := slices.BinarySearch(drawn[:n], i)
		copy(drawn[j+1:n+1], drawn[j:n])
		drawn[j] = i
		n++
		e := p.eps[i]
		if info.IsExcluded(e.Address) {
			continue
		}
		c++
		l, w := uint64(max(e.InFlight(), 0))+1, uint64(max(s.weights[i], 1))
		mute := e.Load.Unanswered(now)
		// l/w < bestLoad/bestWeight without division.
		switch a, b := l*bestWeight, bestLoad*w; {
		case best < 0 || bestMute && !mute || mute == bestMute && a < b:
			best, bestLoad, bestWeight, bestMute, ties = i, l, w, mute, 1
		case mute == bestMute && a == b:
			ties++
			if wrand.Intn(randUint64(), ties) == 0 {
				best, bestLoad, bestWeight = i, l, w
			}
		}
	}
	return best
}
