package gossip

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the shoal_gossip_* series of one Member.
type metrics struct {
	members   *prometheus.GaugeVec // by state
	suspect   prometheus.Counter
	refuted   prometheus.Counter
	dead      prometheus.Counter
	flips     prometheus.Counter
	coalesced prometheus.Counter
	rejoins   *prometheus.CounterVec // by result
	tapErrors prometheus.Counter
	nudges    *prometheus.CounterVec // by result
}

func newMetrics() *metrics {
	return &metrics{
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoal_gossip_members", Help: "Gossip members by state, as this member sees them.",
		}, []string{"state"}),
		suspect: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_gossip_suspect_events_total", Help: "Members that became suspect.",
		}),
		refuted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_gossip_refuted_events_total", Help: "Suspected members that refuted (alive again).",
		}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_gossip_dead_events_total", Help: "Members declared dead (graceful leaves excluded).",
		}),
		flips: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_gossip_health_flips_total", Help: "Instance app-health changes seen in gossip metadata.",
		}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_gossip_events_coalesced_total", Help: "Events replaced by a newer one before delivery.",
		}),
		rejoins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_gossip_rejoins_total", Help: "Periodic re-joins of seeds, by result.",
		}, []string{"result"}),
		tapErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_gossip_tap_errors_total", Help: "Packets the suspicion tap could not decode.",
		}),
		nudges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_gossip_refute_nudges_total", Help: "Long-suspected members asked to refute, by result.",
		}, []string{"result"}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.members, m.suspect, m.refuted, m.dead, m.flips, m.coalesced, m.rejoins, m.tapErrors, m.nudges}
}

// register registers every collector with r, undoing on failure.
func (m *metrics) register(r prometheus.Registerer) error {
	var done []prometheus.Collector
	for _, c := range m.collectors() {
		if err := r.Register(c); err != nil {
			for _, d := range done {
				r.Unregister(d)
			}
			return errors.Join(errors.New("gossip: register metrics"), err)
		}
		done = append(done, c)
	}
	return nil
}

func (m *metrics) unregister(r prometheus.Registerer) {
	for _, c := range m.collectors() {
		r.Unregister(c)
	}
}
