package xdsserver

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the xDS server's Prometheus metrics, registered on the
// Config.Registerer (or on nothing).
type metrics struct {
	streams    *prometheus.GaugeVec     // delta
	pushes     *prometheus.CounterVec   // type, delta
	bytes      *prometheus.CounterVec   // type, delta
	acks       *prometheus.CounterVec   // type
	nacks      *prometheus.CounterVec   // type
	pushToAck  *prometheus.HistogramVec // type
	updates    prometheus.Counter
	coalesced  prometheus.Counter
	failures   prometheus.Counter
	rejected   prometheus.Gauge
	changedCLA prometheus.Counter
	// memReleases counts the releaser's debug.FreeOSMemory calls.
	memReleases prometheus.Counter
	// dropped counts responses a cache could not hand to a stream (its
	// channel was full): a safety net that should never fire.
	dropped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoal_xds_streams", Help: "Open xDS streams.",
		}, []string{"protocol"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_xds_pushes_total", Help: "xDS responses sent.",
		}, []string{"type", "protocol"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_xds_pushed_bytes_total", Help: "Encoded size of the xDS responses sent.",
		}, []string{"type", "protocol"}),
		acks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_xds_acks_total", Help: "xDS responses ACKed.",
		}, []string{"type"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_xds_nacks_total", Help: "xDS responses NACKed.",
		}, []string{"type"}),
		pushToAck: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shoal_xds_push_to_ack_seconds", Help: "Time from an xDS push to its ACK.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"type"}),
		updates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_xds_updates_applied_total", Help: "Translations published to the caches.",
		}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_xds_updates_coalesced_total", Help: "Updates replaced by a later one before being applied.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_xds_translation_failures_total", Help: "Translations not published because they failed the resource check.",
		}),
		rejected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_xds_routes_rejected", Help: "Routes currently not served because they could not be translated.",
		}),
		changedCLA: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_xds_endpoint_assignments_changed_total", Help: "ClusterLoadAssignments updated or removed.",
		}),
		memReleases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_xds_memory_releases_total", Help: "Times freed memory was returned to the operating system after a burst of pushes.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_xds_dropped_responses_total", Help: "Responses a cache could not hand to a stream whose channel was full (should stay 0: that client misses an update until its next one).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.streams, m.pushes, m.bytes, m.acks, m.nacks, m.pushToAck,
		m.updates, m.coalesced, m.failures, m.rejected, m.changedCLA, m.memReleases, m.dropped} {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}
