package metric

import (
	"fmt"
	"math"
	"sync/atomic"
)

// GaugeOpts configure a Gauge or GaugeVec.
type GaugeOpts = Opts

// Gauge is a value that goes up and down. The zero value is not usable;
// create one with NewGauge or GaugeVec.WithLabelValues. Safe for
// concurrent use.
type Gauge struct {
	bits atomic.Uint64 // math.Float64bits of the value
	d    *desc         // nil for a vector's child
}

// NewGauge returns an unlabelled gauge to register.
func NewGauge(o GaugeOpts) *Gauge {
	return &Gauge{d: newDesc(o.Name, o.Help, GaugeType, nil)}
}

// Set sets the gauge to v.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Inc adds one.
func (g *Gauge) Inc() { g.add(1) }

// Dec subtracts one.
func (g *Gauge) Dec() { g.add(-1) }

// Value returns the gauge's value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

func (g *Gauge) add(d float64) {
	for {
		old := g.bits.Load()
		if g.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

func (g *Gauge) sample() Sample { return Sample{Value: g.Value()} }

func (g *Gauge) describe(dst []Family) []Family { return describeOne(dst, g.d) }

func (g *Gauge) collect(dst []Family) []Family { return collectOne(dst, g.d, g.sample()) }

// GaugeVec is a family of gauges partitioned by label values. Safe for
// concurrent use.
type GaugeVec struct {
	v vec[Gauge]
}

// NewGaugeVec returns a gauge family with the given label names.
func NewGaugeVec(o GaugeOpts, labelNames []string) *GaugeVec {
	return &GaugeVec{v: newVec(newDesc(o.Name, o.Help, GaugeType, labelNames), func() *Gauge { return new(Gauge) })}
}

// WithLabelValues returns the gauge for the label values (in the order of
// the label names), creating it on first use. It panics when the number
// of values is wrong.
func (gv *GaugeVec) WithLabelValues(lvs ...string) *Gauge { return gv.v.with(lvs) }

func (gv *GaugeVec) describe(dst []Family) []Family { return append(dst, gv.v.d.family()) }

func (gv *GaugeVec) collect(dst []Family) []Family { return gv.v.collect(dst, (*Gauge).sample) }

// GaugeFunc is a gauge whose value is computed when it is collected (a
// scrape), for values that are cheaper to compute on demand than to keep
// up to date. Safe for concurrent use if f is.
type GaugeFunc struct {
	f func() float64
	d *desc
}

// NewGaugeFunc returns a gauge to register whose value is f(), called at
// every collection; f must be safe for concurrent use and must not block.
func NewGaugeFunc(o GaugeOpts, f func() float64) *GaugeFunc {
	return &GaugeFunc{f: f, d: newDesc(o.Name, o.Help, GaugeType, nil)}
}

func (g *GaugeFunc) describe(dst []Family) []Family { return describeOne(dst, g.d) }

func (g *GaugeFunc) collect(dst []Family) []Family {
	return collectOne(dst, g.d, Sample{Value: g.f()})
}

// GaugeVecFunc is a family of gauges computed when it is collected (a
// scrape): f emits one sample per combination of label values, for state
// that lives elsewhere (a proxy's clusters) and would cost the hot path
// to mirror in gauges. Safe for concurrent use if f is.
type GaugeVecFunc struct {
	f func(emit func(value float64, labelValues ...string))
	d *desc
}

// NewGaugeVecFunc returns a gauge family to register whose samples f
// emits at every collection, label values in the order of labelNames.
// f must be safe for concurrent use, must not block and must not emit
// one combination twice.
func NewGaugeVecFunc(o GaugeOpts, labelNames []string, f func(emit func(value float64, labelValues ...string))) *GaugeVecFunc {
	return &GaugeVecFunc{f: f, d: newDesc(o.Name, o.Help, GaugeType, labelNames)}
}

func (g *GaugeVecFunc) describe(dst []Family) []Family { return append(dst, g.d.family()) }

func (g *GaugeVecFunc) collect(dst []Family) []Family {
	f := g.d.family()
	g.f(func(v float64, lvs ...string) {
		if len(lvs) != len(g.d.labels) {
			panic(fmt.Sprintf("metric: %s: %d label values for %d label names", g.d.name, len(lvs), len(g.d.labels)))
		}
		lvs = validUTF8(lvs)
		values := make([]string, len(lvs))
		for i, pos := range g.d.order {
			values[i] = lvs[pos]
		}
		f.Samples = append(f.Samples, Sample{LabelValues: values, Value: v})
	})
	sortSamples(f.Samples)
	return append(dst, f)
}
