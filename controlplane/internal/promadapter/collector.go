// Package promadapter exports a metric.Registry through client_golang. The
// packages the control plane shares with the sidecar (registry/gossip)
// instrument with internal/metric so that the sidecar binary does not link
// client_golang (issue #7); the control plane keeps client_golang and shows
// their metrics on its /metrics through a Collector.
package promadapter

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-mesh/shoal/internal/metric"
)

// Collector is a prometheus.Collector over the families a metric.Registry
// has when New is called: create it after the metrics are registered.
// Families registered later are not exported (client_golang would refuse
// them as undescribed); families unregistered later are no longer
// collected, and the Collector can still be unregistered. Safe for
// concurrent use.
type Collector struct {
	reg *metric.Registry
	// descs are the exported families by name; immutable.
	descs map[string]*prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// New returns a Collector exporting reg's current families; reg must not
// be nil.
func New(reg *metric.Registry) *Collector {
	c := &Collector{reg: reg, descs: make(map[string]*prometheus.Desc)}
	for _, f := range reg.Describe() {
		c.descs[f.Name] = prometheus.NewDesc(f.Name, f.Help, f.LabelNames, nil)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector: every sample becomes a constant
// metric of the same type, labels and values.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.reg.Gather() {
		d, ok := c.descs[f.Name]
		if !ok {
			continue
		}
		for _, s := range f.Samples {
			m, err := constMetric(d, f.Type, s)
			if err != nil {
				m = prometheus.NewInvalidMetric(d, err)
			}
			ch <- m
		}
	}
}

func constMetric(d *prometheus.Desc, t metric.Type, s metric.Sample) (prometheus.Metric, error) {
	switch t {
	case metric.CounterType:
		return prometheus.NewConstMetric(d, prometheus.CounterValue, s.Value, s.LabelValues...)
	case metric.HistogramType:
		buckets := make(map[float64]uint64, len(s.Buckets))
		for _, b := range s.Buckets[:max(len(s.Buckets)-1, 0)] { // +Inf is implied by the count
			buckets[b.UpperBound] = b.Count
		}
		return prometheus.NewConstHistogram(d, s.Count, s.Sum, buckets, s.LabelValues...)
	case metric.SummaryType:
		qs := make(map[float64]float64, len(s.Quantiles))
		for _, q := range s.Quantiles {
			qs[q.Quantile] = q.Value
		}
		return prometheus.NewConstSummary(d, s.Count, s.Sum, qs, s.LabelValues...)
	}
	return prometheus.NewConstMetric(d, prometheus.GaugeValue, s.Value, s.LabelValues...)
}
