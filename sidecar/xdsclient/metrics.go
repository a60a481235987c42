package xdsclient

import (
	"errors"
	"strings"

	"github.com/shoal-mesh/shoal/internal/metric"
)

// metrics are the client's Prometheus metrics. With a nil Registerer they
// are created but not registered.
type metrics struct {
	connected  *metric.Gauge
	responses  *metric.CounterVec // by type and result (ack, nack)
	streams    *metric.CounterVec // stream ends by reason (error, unimplemented)
	delivered  *metric.Counter
	coalesced  *metric.Counter
	stateWrite *metric.CounterVec // by result (ok, error)
	failovers  *metric.Counter
}

func newMetrics(reg metric.Registerer) (*metrics, error) {
	m := &metrics{
		connected: metric.NewGauge(metric.GaugeOpts{
			Name: "shoal_xdsclient_connected",
			Help: "1 while an ADS stream to the control plane is up and has delivered a response.",
		}),
		responses: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_xdsclient_responses_total",
			Help: "xDS responses received, by type and result (ack, nack).",
		}, []string{"type", "result"}),
		streams: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_xdsclient_stream_failures_total",
			Help: "ADS streams that ended with an error, by mode.",
		}, []string{"mode"}),
		delivered: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_xdsclient_snapshots_delivered_total",
			Help: "Snapshots passed to OnUpdate.",
		}),
		coalesced: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_xdsclient_snapshots_coalesced_total",
			Help: "Snapshots replaced by a newer one before OnUpdate saw them.",
		}),
		stateWrite: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_xdsclient_state_writes_total",
			Help: "Writes of the last good snapshot to the state dir, by result.",
		}, []string{"result"}),
		failovers: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_xdsclient_failovers_total",
			Help: "Moves to the next control plane of --xds after a failed stream.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	cs := []metric.Collector{m.connected, m.responses, m.streams, m.delivered, m.coalesced, m.stateWrite, m.failovers}
	var errs []error
	for _, c := range cs {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}

// typeLabel shortens a type URL to its message name, e.g. "Listener".
func typeLabel(typeURL string) string {
	return typeURL[strings.LastIndex(typeURL, ".")+1:]
}
