package metric

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Type is the type of a metric family.
type Type uint8

// The family types of the text format.
const (
	CounterType Type = iota + 1
	GaugeType
	HistogramType
	SummaryType
)

// String returns the type's name in a # TYPE line.
func (t Type) String() string {
	switch t {
	case CounterType:
		return "counter"
	case GaugeType:
		return "gauge"
	case HistogramType:
		return "histogram"
	case SummaryType:
		return "summary"
	}
	return "untyped"
}

// Family is a snapshot of one metric family, as Registry.Gather returns it.
// Its slices may be shared with the registry and must not be modified.
type Family struct {
	Name, Help string
	Type       Type
	// LabelNames are sorted; every sample's LabelValues follow this order.
	LabelNames []string
	// Samples are sorted by label values; empty in Registry.Describe.
	Samples []Sample
}

// Sample is one series (one combination of label values) of a Family.
type Sample struct {
	LabelValues []string
	// Value is a counter's or a gauge's value.
	Value float64
	// Count and Sum are a histogram's or a summary's.
	Count uint64
	Sum   float64
	// Buckets are a histogram's cumulative counts by ascending upper
	// bound; the last bound is +Inf and its count equals Count.
	Buckets []Bucket
	// Quantiles are a summary's.
	Quantiles []Quantile
}

// Bucket is a histogram's cumulative count of observations <= UpperBound.
type Bucket struct {
	UpperBound float64
	Count      uint64
}

// Quantile is a summary's quantile (0 to 1) and its value.
type Quantile struct {
	Quantile, Value float64
}

// desc is what a metric or vector knows about its family.
type desc struct {
	name, help string
	typ        Type
	// labels are the label names, sorted; order[i] is the position of
	// labels[i] in the caller's label values.
	labels []string
	order  []int
}

// newDesc validates the names and panics on invalid ones: metric and label
// names are constants of the instrumented code, so a bad one is a bug.
func newDesc(name, help string, typ Type, labelNames []string) *desc {
	if !validName(name, true) {
		panic(fmt.Sprintf("metric: invalid metric name %q", name))
	}
	d := &desc{name: name, help: help, typ: typ, labels: slices.Clone(labelNames), order: make([]int, len(labelNames))}
	for i, l := range labelNames {
		if !validName(l, false) || strings.HasPrefix(l, "__") || typ == HistogramType && l == "le" {
			panic(fmt.Sprintf("metric: %s: invalid label name %q", name, l))
		}
		d.order[i] = i
	}
	sort.Sort(byName{d})
	for i := 1; i < len(d.labels); i++ {
		if d.labels[i] == d.labels[i-1] {
			panic(fmt.Sprintf("metric: %s: duplicate label name %q", name, d.labels[i]))
		}
	}
	return d
}

// validName reports whether s matches [a-zA-Z_:][a-zA-Z0-9_:]* (a metric
// name) or, without colons, [a-zA-Z_][a-zA-Z0-9_]* (a label name).
func validName(s string, colon bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' || colon && c == ':'
		if !ok {
			return false
		}
	}
	return s != ""
}

// family returns d's family without samples.
func (d *desc) family() Family {
	return Family{Name: d.name, Help: d.help, Type: d.typ, LabelNames: d.labels}
}

// byName sorts a desc's labels and their positions together.
type byName struct{ d *desc }

func (s byName) Len() int           { return len(s.d.labels) }
func (s byName) Less(i, j int) bool { return s.d.labels[i] < s.d.labels[j] }
func (s byName) Swap(i, j int) {
	s.d.labels[i], s.d.labels[j] = s.d.labels[j], s.d.labels[i]
	s.d.order[i], s.d.order[j] = s.d.order[j], s.d.order[i]
}
