package gossip

import (
	"errors"

	"github.com/shoal-mesh/shoal/internal/metric"
)

// metrics are the shoal_gossip_* series of one Member.
type metrics struct {
	members   *metric.GaugeVec // by state
	suspect   *metric.Counter
	refuted   *metric.Counter
	dead      *metric.Counter
	flips     *metric.Counter
	coalesced *metric.Counter
	rejoins   *metric.CounterVec // by result
	tapErrors *metric.Counter
	nudges    *metric.CounterVec // by result
	// claimsIgnored counts instance health claims dropped for want of a
	// ticket naming the instance's service.
	claimsIgnored *metric.Counter
}

func newMetrics() *metrics {
	return &metrics{
		members: metric.NewGaugeVec(metric.GaugeOpts{
			Name: "shoal_gossip_members", Help: "Gossip members by state, as this member sees them.",
		}, []string{"state"}),
		suspect: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_gossip_suspect_events_total", Help: "Members that became suspect.",
		}),
		refuted: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_gossip_refuted_events_total", Help: "Suspected members that refuted (alive again).",
		}),
		dead: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_gossip_dead_events_total", Help: "Members declared dead (graceful leaves excluded).",
		}),
		flips: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_gossip_health_flips_total", Help: "Instance app-health changes seen in gossip metadata.",
		}),
		coalesced: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_gossip_events_coalesced_total", Help: "Events replaced by a newer one before delivery.",
		}),
		rejoins: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_gossip_rejoins_total", Help: "Periodic re-joins of seeds, by result.",
		}, []string{"result"}),
		tapErrors: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_gossip_tap_errors_total", Help: "Packets the suspicion tap could not decode.",
		}),
		nudges: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_gossip_refute_nudges_total", Help: "Long-suspected members asked to refute, by result.",
		}, []string{"result"}),
		claimsIgnored: metric.NewCounter(metric.CounterOpts{
			Name: "shoal_gossip_claims_ignored_total", Help: "Instance health claims ignored: the member had no valid ticket, or the instance is not of its identity's service.",
		}),
	}
}

func (m *metrics) collectors() []metric.Collector {
	return []metric.Collector{m.members, m.suspect, m.refuted, m.dead, m.flips, m.coalesced, m.rejoins, m.tapErrors, m.nudges, m.claimsIgnored}
}

// register registers every collector with r, undoing on failure.
func (m *metrics) register(r metric.Registerer) error {
	var done []metric.Collector
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

func (m *metrics) unregister(r metric.Registerer) {
	for _, c := range m.collectors() {
		r.Unregister(c)
	}
}
