package gossip

import (
	"time"

	"github.com/shoal-mesh/shoal/registry"
)

// MemberState is a member's liveness as this member's gossip sees it.
type MemberState uint8

// Member states, in memberlist's order. The zero value is invalid.
const (
	MemberAlive MemberState = iota + 1
	MemberSuspect
	MemberDead // declared dead by the failure detector
	MemberLeft // left gracefully (Leave)
)

func (s MemberState) String() string {
	switch s {
	case MemberAlive:
		return "alive"
	case MemberSuspect:
		return "suspect"
	case MemberDead:
		return "dead"
	case MemberLeft:
		return "left"
	}
	return "invalid"
}

// Status is gossip's verdict on one instance: routable or not, and why.
// Lower values are better; when several members claim one instance (a
// sidecar restarted under a new name) the best status wins.
type Status uint8

// Statuses. The zero value is invalid: Health reports known=false instead.
const (
	StatusHealthy   Status = iota + 1 // member alive, instance passing checks: routable
	StatusUnhealthy                   // member alive, instance failing checks
	StatusSuspect                     // member suspected by the failure detector
	StatusLeft                        // member left gracefully
	StatusDead                        // member declared dead
)

// Routable reports whether new requests may go to the instance.
func (s Status) Routable() bool { return s == StatusHealthy }

func (s Status) String() string {
	switch s {
	case StatusHealthy:
		return "healthy"
	case StatusUnhealthy:
		return "unhealthy"
	case StatusSuspect:
		return "suspect"
	case StatusLeft:
		return "left"
	case StatusDead:
		return "dead"
	}
	return "invalid"
}

// Registry maps the status onto the registry's health model (left and
// dead are both registry.HealthDead), for the control plane's EDS overlay.
func (s Status) Registry() registry.Health {
	switch s {
	case StatusHealthy:
		return registry.HealthHealthy
	case StatusUnhealthy:
		return registry.HealthUnhealthy
	case StatusSuspect:
		return registry.HealthSuspect
	case StatusLeft, StatusDead:
		return registry.HealthDead
	}
	return registry.HealthUnknown
}

func statusOf(state MemberState, healthy bool) Status {
	switch state {
	case MemberAlive:
		if healthy {
			return StatusHealthy
		}
		return StatusUnhealthy
	case MemberSuspect:
		return StatusSuspect
	case MemberLeft:
		return StatusLeft
	}
	return StatusDead
}

// Peer is a snapshot of one member as this member sees it. Instances is a
// copy owned by the receiver.
type Peer struct {
	Name      string
	Addr      string // advertised "ip:port"
	Role      Role
	State     MemberState
	Since     time.Time // when State last changed, on this member's clock
	Instances []InstanceHealth
}

// Event reports a member whose state or instance health changed. Events are
// coalesced per member: Peer is the member's latest state when delivered.
type Event struct {
	Peer
}
