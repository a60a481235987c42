package lb

import (
	"math"
	"strconv"
	"sync/atomic"
	"time"
)

// ORCAHeader is the response header a backend reports its load in (ORCA,
// the Open Request Cost Aggregation format Envoy and gRPC read): a format
// prefix ("TEXT ", "JSON " or "BIN ") and the report. The sidecar reads the
// TEXT format, comma-separated key=value pairs such as
//
//	endpoint-load-metrics: TEXT application_utilization=0.4, rps_fractional=120, named_metrics.eventloop_delay_p99_ms=12
const ORCAHeader = "endpoint-load-metrics"

// LoadReport is the part of one ORCA load report the least loaded strategy
// uses (gRFC A58). The zero value is "no report".
type LoadReport struct {
	// ApplicationUtilization is application_utilization, preferred over
	// CPUUtilization when positive (A58).
	ApplicationUtilization float64
	// CPUUtilization is cpu_utilization.
	CPUUtilization float64
	// QPS is rps_fractional: the requests per second the backend serves
	// (all callers, not just this sidecar).
	QPS float64
	// EPS is eps: errors per second.
	EPS float64
}

// Utilization is the utilization A58 weighs by: application utilization
// when positive, else CPU utilization.
func (r LoadReport) Utilization() float64 {
	if r.ApplicationUtilization > 0 {
		return r.ApplicationUtilization
	}
	return r.CPUUtilization
}

// ParseORCA parses the value of an ORCAHeader in the TEXT format, as a
// string (HTTP/2 header fields) or bytes (the HTTP/1 parser's slices). It
// reports false for other formats, for a value with no usable metric, and
// for malformed numbers (a report is all or nothing). Unknown keys and
// named_metrics are skipped. It does not allocate or retain v.
func ParseORCA[T ~string | ~[]byte](v T) (LoadReport, bool) {
	var r LoadReport
	const prefix = "TEXT "
	if len(v) < len(prefix) || string(v[:len(prefix)]) != prefix {
		return r, false
	}
	got := false
	for rest := v[len(prefix):]; len(rest) > 0; {
		kv := rest
		if i := indexByte(rest, ','); i >= 0 {
			kv, rest = rest[:i], rest[i+1:]
		} else {
			rest = rest[:0]
		}
		kv = trimSpace(kv)
		eq := indexByte(kv, '=')
		if eq < 0 {
			return LoadReport{}, false
		}
		var dst *float64
		switch string(trimSpace(kv[:eq])) { // compared in place, no allocation
		case "application_utilization":
			dst = &r.ApplicationUtilization
		case "cpu_utilization":
			dst = &r.CPUUtilization
		case "rps_fractional":
			dst = &r.QPS
		case "eps":
			dst = &r.EPS
		default:
			continue
		}
		// The conversion does not escape: no allocation for short numbers.
		f, err := strconv.ParseFloat(string(trimSpace(kv[eq+1:])), 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return LoadReport{}, false
		}
		*dst, got = f, true
	}
	return r, got
}

func indexByte[T ~string | ~[]byte](v T, c byte) int {
	for i := 0; i < len(v); i++ {
		if v[i] == c {
			return i
		}
	}
	return -1
}

func trimSpace[T ~string | ~[]byte](v T) T {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

// orcaState is the last load report of an address, kept on its Load so
// that it survives picker rebuilds. Fields are separate atomics: a reader
// may mix two consecutive reports, which is harmless for a weight.
type orcaState struct {
	util          atomic.Uint64 // math.Float64bits
	qps           atomic.Uint64
	eps           atomic.Uint64
	lastUpdate    atomic.Int64 // unix nanoseconds of the last usable report; 0: none
	nonEmptySince atomic.Int64 // unix nanoseconds since reports are continuous; 0: none
}

// ReportLoad records a load report received on a response from e at now.
// Reports without utilization or QPS are ignored, as A58 ignores them.
// Safe for concurrent use; never blocks or allocates. Untracked endpoints
// (nil Load) ignore it.
func (e *Endpoint) ReportLoad(r LoadReport, now time.Time) { e.Load.report(r, now.UnixNano()) }

func (l *Load) report(r LoadReport, now int64) {
	u := r.Utilization()
	if l == nil || u <= 0 || r.QPS <= 0 {
		return
	}
	o := &l.orca
	o.util.Store(math.Float64bits(u))
	o.qps.Store(math.Float64bits(r.QPS))
	o.eps.Store(math.Float64bits(r.EPS))
	o.lastUpdate.Store(now)
	o.nonEmptySince.CompareAndSwap(0, now)
}

// LastReport returns the last usable load report recorded for e (its
// utilization in ApplicationUtilization) and when it came; the zero time
// when there was none. Safe for concurrent use.
func (e *Endpoint) LastReport() (LoadReport, time.Time) {
	l := e.Load
	if l == nil || l.orca.lastUpdate.Load() == 0 {
		return LoadReport{}, time.Time{}
	}
	o := &l.orca
	r := LoadReport{
		ApplicationUtilization: math.Float64frombits(o.util.Load()),
		QPS:                    math.Float64frombits(o.qps.Load()),
		EPS:                    math.Float64frombits(o.eps.Load()),
	}
	return r, time.Unix(0, o.lastUpdate.Load())
}

// ORCAWeight returns the address's weight from its load reports at now,
// following gRFC A58: qps / (utilization + penalty × eps/qps), or 0 when
// there is no report, the reports are younger than the blackout period, or
// the last one is older than the expiration period (which also restarts
// the blackout). cfg should have its defaults filled in. Safe for
// concurrent use.
func (l *Load) ORCAWeight(now time.Time, cfg LeastLoadedConfig) float64 {
	if l == nil {
		return 0
	}
	o := &l.orca
	t := now.UnixNano()
	last := o.lastUpdate.Load()
	if last == 0 {
		return 0
	}
	if t-last >= int64(cfg.WeightExpirationPeriod) {
		// A58: an endpoint whose reports stopped starts over.
		if since := o.nonEmptySince.Load(); since != 0 && o.lastUpdate.Load() == last {
			o.nonEmptySince.CompareAndSwap(since, 0)
		}
		return 0
	}
	since := o.nonEmptySince.Load()
	if since == 0 || t-since < int64(cfg.BlackoutPeriod) {
		return 0
	}
	u := math.Float64frombits(o.util.Load())
	qps := math.Float64frombits(o.qps.Load())
	eps := math.Float64frombits(o.eps.Load())
	if qps <= 0 {
		return 0
	}
	u += cfg.ErrorUtilizationPenalty * eps / qps
	if u <= 0 {
		return 0
	}
	return qps / u
}
