package registry

// Health is what the mesh currently believes about an instance, from its
// sidecar's health checks and gossip. etcd registration alone gives
// HealthUnknown, which is routable (an instance gossip has never seen is
// routable on etcd's word).
type Health uint8

// Health values, ordered so that the zero value is "nothing known".
const (
	HealthUnknown   Health = iota // registered; no check or gossip yet
	HealthHealthy                 // passing its checks
	HealthUnhealthy               // failing its app health check
	HealthSuspect                 // its host is suspected by gossip
	HealthDraining                // shutting down; no new requests
	HealthDead                    // its host was declared dead or left
)

// Routable reports whether new requests may be sent to an instance.
func (h Health) Routable() bool { return h == HealthUnknown || h == HealthHealthy }

func (h Health) String() string {
	switch h {
	case HealthUnknown:
		return "unknown"
	case HealthHealthy:
		return "healthy"
	case HealthUnhealthy:
		return "unhealthy"
	case HealthSuspect:
		return "suspect"
	case HealthDraining:
		return "draining"
	case HealthDead:
		return "dead"
	}
	return "invalid"
}

// Endpoint is an instance together with its current health. The Instance
// is shared and must not be modified.
type Endpoint struct {
	*Instance
	Health Health
}
