package xdsserver

import (
	"errors"

	"github.com/shoal-mesh/shoal/internal/metric"
)

// metrics are the xDS server's metrics (internal/metric, the one
// instrumentation layer of the binary), registered on the
// Config.Registerer (or on nothing).
type metrics struct {
	streams    *metric.GaugeVec     // delta
	pushes     *metric.CounterVec   // type, delta
	bytes      *metric.CounterVec   // type, delta
	acks       *metric.CounterVec   // type
	nacks      *metric.CounterVec   // type
	pushToAck  *metric.HistogramVec // type
	updates    *metric.Counter
	coalesced  *metric.Counter
	failures   *metric.Counter
	rejected   *metric.Gauge
	changedCLA *metric.Counter
	// memReleases counts the releaser's debug.FreeOSMemory calls.
	memReleases *metric.Counter
	// dropped counts responses a cache could not hand to a stream (its
	// channel was full): a safety net that should never fire.
	dropped *metric.Counter
}

func newMetrics(reg metric.Registerer) (*metrics, error) {
	m := &metrics{
		streams: metric.NewGaugeVec(metric.GaugeOpts{
			Name: "shoal_xds_streams", Help: "Open xDS streams.",
		}, []string{"protocol"}),
		pushes: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_xds_pushes_total", Help: "xDS responses sent.",
		}, []string{"type", "protocol"}),
		bytes: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_xds_pushed_bytes_total", Help: "Encoded size of the xDS responses sent.",
		}, []string{"type", "protocol"}),
		acks: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_xds_acks_total", Help: "xDS responses ACKed.",
		}, []string{"type"}),
		nacks: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_xds_nacks_total", Help: "xDS responses NACKed.",
		}, []string{"type"}),
		pushToAck: metric.NewHistogramVec(metric.HistogramOpts{
			Name: "shoal_xds_push_to_ack_seconds", Help: "Time from an xDS push to its ACK.",
			Buckets: metric.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"type"}),
		updates: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_xds_updates_applied_total", Help: "Translations published to the caches.",
		}),
		coalesced: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_xds_updates_coalesced_total", Help: "Updates replaced by a later one before being applied.",
		}),
		failures: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_xds_translation_failures_total", Help: "Translations not published because they failed the resource check.",
		}),
		rejected: metric.NewGauge(metric.GaugeOpts{
			Name: "shoal_xds_routes_rejected", Help: "Routes currently not served because they could not be translated.",
		}),
		changedCLA: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_xds_endpoint_assignments_changed_total", Help: "ClusterLoadAssignments updated or removed.",
		}),
		memReleases: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_xds_memory_releases_total", Help: "Times freed memory was returned to the operating system after a burst of pushes.",
		}),
		dropped: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_xds_dropped_responses_total", Help: "Responses a cache could not hand to a stream whose channel was full (should stay 0: that client misses an update until its next one).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []metric.Collector{m.streams, m.pushes, m.bytes, m.acks, m.nacks, m.pushToAck,
		m.updates, m.coalesced, m.failures, m.rejected, m.changedCLA, m.memReleases, m.dropped} {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}
