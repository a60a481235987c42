package identity

import (
	"errors"

	"github.com/shoal-mesh/shoal/internal/metric"
)

// metrics are the client's metrics; with a nil Registerer they are created
// but not registered.
type metrics struct {
	expiry   *metric.Gauge      // NotAfter of the current SVID, Unix seconds
	renewals *metric.CounterVec // by result (ok, error)
}

func newMetrics(reg metric.Registerer) (*metrics, error) {
	m := &metrics{
		expiry: metric.NewGauge(metric.GaugeOpts{
			Name: "shoal_identity_cert_expiry_seconds",
			Help: "Expiry (NotAfter) of the workload certificate in use, as a Unix time in seconds; alert on shoal_identity_cert_expiry_seconds - time() falling low.",
		}),
		renewals: metric.NewCounterVec(metric.CounterOpts{
			Name: "shoal_identity_renewals_total",
			Help: "Certificates requested from the control plane (first one and renewals), by result (ok, error).",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	return m, errors.Join(reg.Register(m.expiry), reg.Register(m.renewals))
}
