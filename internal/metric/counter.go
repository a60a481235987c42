package metric

import "sync/atomic"

// Opts name and describe a metric family.
type Opts struct {
	// Name is the family's name, e.g. shoal_sidecar_requests_total.
	Name string
	// Help is the # HELP text.
	Help string
}

// CounterOpts configure a Counter or CounterVec.
type CounterOpts = Opts

// Counter is a monotonically increasing count. The zero value is not
// usable; create one with NewCounter or CounterVec.WithLabelValues. Safe
// for concurrent use.
type Counter struct {
	n atomic.Uint64
	d *desc // nil for a vector's child
}

// NewCounter returns an unlabelled counter to register.
func NewCounter(o CounterOpts) *Counter {
	return &Counter{d: newDesc(o.Name, o.Help, CounterType, nil)}
}

// Inc adds one. It is a single atomic add.
func (c *Counter) Inc() { c.n.Add(1) }

// Add adds n (a count: bytes, events). It is a single atomic add.
func (c *Counter) Add(n uint64) { c.n.Add(n) }

// Value returns the current count.
func (c *Counter) Value() float64 { return float64(c.n.Load()) }

func (c *Counter) sample() Sample { return Sample{Value: c.Value()} }

func (c *Counter) describe(dst []Family) []Family { return describeOne(dst, c.d) }

func (c *Counter) collect(dst []Family) []Family { return collectOne(dst, c.d, c.sample()) }

// CounterVec is a family of counters partitioned by label values. Safe for
// concurrent use.
type CounterVec struct {
	v vec[Counter]
}

// NewCounterVec returns a counter family with the given label names.
func NewCounterVec(o CounterOpts, labelNames []string) *CounterVec {
	return &CounterVec{v: newVec(newDesc(o.Name, o.Help, CounterType, labelNames), func() *Counter { return new(Counter) })}
}

// WithLabelValues returns the counter for the label values (in the order
// of the label names), creating it on first use. It panics when the number
// of values is wrong. Keep the result on hot paths: the lookup hashes the
// values and takes a read lock.
func (cv *CounterVec) WithLabelValues(lvs ...string) *Counter { return cv.v.with(lvs) }

// DeleteLabelValues removes the counter for the label values and reports
// whether it existed. A counter obtained before keeps counting, unexported.
func (cv *CounterVec) DeleteLabelValues(lvs ...string) bool { return cv.v.delete(lvs) }

func (cv *CounterVec) describe(dst []Family) []Family { return append(dst, cv.v.d.family()) }

func (cv *CounterVec) collect(dst []Family) []Family { return cv.v.collect(dst, (*Counter).sample) }

// describeOne and collectOne serve the unlabelled metrics; d is nil for a
// vector's child, which cannot be registered on its own.
func describeOne(dst []Family, d *desc) []Family {
	if d == nil {
		return dst
	}
	return append(dst, d.family())
}

func collectOne(dst []Family, d *desc, s Sample) []Family {
	if d == nil {
		return dst
	}
	f := d.family()
	f.Samples = []Sample{s}
	return append(dst, f)
}
