package metric

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"sync/atomic"
)

// HistogramOpts configure a Histogram or HistogramVec.
type HistogramOpts struct {
	Name, Help string
	// Buckets are the upper bounds, strictly increasing; +Inf is implied
	// (and dropped if given). Required.
	Buckets []float64
}

// Histogram counts observations in fixed buckets. The zero value is not
// usable; create one with NewHistogram or HistogramVec.WithLabelValues.
// Safe for concurrent use.
//
// Observe is two atomic operations and never blocks a scrape. A scrape
// reads the buckets one by one, so an observation in flight may be in the
// buckets and not yet in the sum; _count is always the +Inf bucket.
type Histogram struct {
	upper  []float64       // shared by a vector's children; never modified
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Uint64   // math.Float64bits of the sum
	d      *desc           // nil for a vector's child
}

// NewHistogram returns an unlabelled histogram to register.
func NewHistogram(o HistogramOpts) *Histogram {
	h := newHistogram(checkBuckets(o))
	h.d = newDesc(o.Name, o.Help, HistogramType, nil)
	return h
}

func newHistogram(upper []float64) *Histogram {
	return &Histogram{upper: upper, counts: make([]atomic.Uint64, len(upper)+1)}
}

// checkBuckets returns the bounds without +Inf and panics when they are
// missing or not strictly increasing (a bug of the call site).
func checkBuckets(o HistogramOpts) []float64 {
	b := slices.Clone(o.Buckets)
	if n := len(b); n > 0 && math.IsInf(b[n-1], 1) {
		b = b[:n-1]
	}
	if len(b) == 0 {
		panic(fmt.Sprintf("metric: %s: no buckets", o.Name))
	}
	for i := 1; i < len(b); i++ {
		if !(b[i] > b[i-1]) {
			panic(fmt.Sprintf("metric: %s: buckets not strictly increasing at %v", o.Name, b[i]))
		}
	}
	return b
}

// linearSearchMax is the bucket count up to which Observe scans linearly;
// above it a binary search is faster (the same cut as client_golang's).
const linearSearchMax = 35

// Observe records v. NaN counts in the +Inf bucket.
func (h *Histogram) Observe(v float64) {
	var i int
	if len(h.upper) <= linearSearchMax {
		for i < len(h.upper) && !(v <= h.upper[i]) {
			i++
		}
	} else {
		i = sort.SearchFloat64s(h.upper, v)
	}
	h.counts[i].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

func (h *Histogram) sample() Sample {
	s := Sample{Buckets: make([]Bucket, len(h.counts)), Sum: math.Float64frombits(h.sum.Load())}
	for i := range h.counts {
		s.Count += h.counts[i].Load()
		s.Buckets[i] = Bucket{UpperBound: math.Inf(1), Count: s.Count}
		if i < len(h.upper) {
			s.Buckets[i].UpperBound = h.upper[i]
		}
	}
	return s
}

func (h *Histogram) describe(dst []Family) []Family { return describeOne(dst, h.d) }

func (h *Histogram) collect(dst []Family) []Family { return collectOne(dst, h.d, h.sample()) }

// HistogramVec is a family of histograms with the same buckets,
// partitioned by label values. Safe for concurrent use.
type HistogramVec struct {
	v vec[Histogram]
}

// NewHistogramVec returns a histogram family with the given label names;
// "le" is reserved.
func NewHistogramVec(o HistogramOpts, labelNames []string) *HistogramVec {
	upper := checkBuckets(o)
	d := newDesc(o.Name, o.Help, HistogramType, labelNames)
	return &HistogramVec{v: newVec(d, func() *Histogram { return newHistogram(upper) })}
}

// WithLabelValues returns the histogram for the label values (in the order
// of the label names), creating it on first use. It panics when the number
// of values is wrong. Keep the result on hot paths.
func (hv *HistogramVec) WithLabelValues(lvs ...string) *Histogram { return hv.v.with(lvs) }

func (hv *HistogramVec) describe(dst []Family) []Family { return append(dst, hv.v.d.family()) }

func (hv *HistogramVec) collect(dst []Family) []Family {
	return hv.v.collect(dst, (*Histogram).sample)
}

// ExponentialBuckets returns count bucket bounds: start, start*factor,
// start*factor², … (client_golang's function of the same name). It panics
// unless count ≥ 1, start > 0 and factor > 1.
func ExponentialBuckets(start, factor float64, count int) []float64 {
	if count < 1 || start <= 0 || factor <= 1 {
		panic("metric: ExponentialBuckets needs count >= 1, start > 0 and factor > 1")
	}
	b := make([]float64, count)
	for i := range b {
		b[i] = start
		start *= factor
	}
	return b
}
