package lb

// Eligible returns the endpoints a picker chooses among, in input order: the
// healthy ones, or all of them when fewer than threshold percent are healthy
// (Envoy's panic mode, so that a mass health-check failure does not pile all
// traffic onto the few survivors). panicking reports panic mode. A threshold
// of 0 disables panic mode. Eligible allocates and is meant for Build, not
// for the hot path; it does not modify eps.
func Eligible(eps []*Endpoint, threshold float64) (out []*Endpoint, panicking bool) {
	healthy := 0
	for _, e := range eps {
		if e.Healthy {
			healthy++
		}
	}
	if len(eps) > 0 && float64(healthy)*100 < threshold*float64(len(eps)) {
		return append([]*Endpoint(nil), eps...), true
	}
	out = make([]*Endpoint, 0, healthy)
	for _, e := range eps {
		if e.Healthy {
			out = append(out, e)
		}
	}
	return out, false
}
