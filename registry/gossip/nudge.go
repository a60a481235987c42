package gossip

import (
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// nudgeMsg is the user message asking its receiver to refute a suspicion.
//
// Why: SWIM tells a suspect it is suspected in two ways, the suspect
// broadcast (retransmitted a bounded number of times) and the suspecter's
// next probe of it (memberlist piggybacks a suspect message on probes of
// suspect members). If the suspecter was cut off when it suspected, its
// broadcasts were spent on a network that dropped them; and Lifeguard then
// stretches its probe interval up to 8×, so its next probe of the suspect
// can come after the suspicion timeout. The suspect, alive all along, is
// then declared dead. A member holding a suspicion for longer than
// nudgeAfter therefore tells the suspect directly (TCP, so it is either
// delivered or fails), and the suspect refutes with memberlist's
// UpdateNode: a new alive message with a higher incarnation, which is what
// a refutation is. A member that is really gone cannot answer, so a crash
// is still declared dead on time.
const nudgeMsg = "shoal/refute"

// nudgeAfter is how long a suspicion stands before the suspect is nudged:
// long enough that memberlist's own refutation normally wins, short enough
// to leave most of the suspicion timeout.
func (m *Member) nudgeAfter() time.Duration { return 10 * m.cfg.Timing.ProbeInterval }

// nudger owns the blocking work of the nudge protocol: sending nudges and
// refuting when nudged. It exits when ctx ends (Close).
func (m *Member) nudger() {
	defer m.wg.Done()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.refuteCh:
			m.log.Debug("gossip: refuting on a peer's request")
			if err := m.ml.UpdateNode(updateTimeout); err != nil {
				m.log.Debug("gossip: refutation not yet sent", "err", err)
			}
		case peers := <-m.nudgeCh:
			for _, p := range peers {
				if m.ctx.Err() != nil {
					return
				}
				m.nudge(p)
			}
		}
	}
}

func (m *Member) nudge(p Peer) {
	host, port, err := net.SplitHostPort(p.Addr)
	if err != nil {
		return
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return
	}
	to := &memberlist.Node{Name: p.Name, Addr: net.ParseIP(host), Port: uint16(n)}
	err = m.ml.SendReliable(to, []byte(nudgeMsg))
	m.met.nudges.WithLabelValues(map[bool]string{true: "sent", false: "failed"}[err == nil]).Inc()
	m.log.Debug("gossip: nudged suspect to refute", "peer", p.Name, "err", err)
}
