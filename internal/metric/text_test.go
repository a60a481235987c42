package metric

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parse reads a text exposition back with Prometheus' own parser.
func parse(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("expfmt cannot parse the exposition: %v\n%s", err, text)
	}
	return fams
}

// labels returns a metric's label pairs as a map.
func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

func TestExpositionParsesBackForEveryKind(t *testing.T) {
	reg := NewRegistry()
	c := NewCounter(CounterOpts{Name: "t_events_total", Help: "Events.\nSecond line with a \\ backslash."})
	cv := NewCounterVec(CounterOpts{Name: "t_requests_total", Help: "Requests."}, []string{"code", "cluster"})
	g := NewGauge(GaugeOpts{Name: "t_connected", Help: "Connected."})
	gv := NewGaugeVec(GaugeOpts{Name: "t_members", Help: "Members."}, []string{"state"})
	h := NewHistogram(HistogramOpts{Name: "t_wait_seconds", Help: "Wait.", Buckets: []float64{0.1, 1}})
	hv := NewHistogramVec(HistogramOpts{Name: "t_duration_seconds", Help: "Duration.", Buckets: []float64{.0005, .01, 2.5}}, []string{"cluster"})
	reg.MustRegister(c, cv, g, gv, h, hv, NewGoCollector(), NewProcessCollector())

	c.Inc()
	c.Inc()
	weird := "a\"quote\\back\nline"
	cv.WithLabelValues("200", "orders").Inc()
	cv.WithLabelValues("503", weird).Inc()
	cv.WithLabelValues("503", weird).Inc()
	g.Set(1)
	gv.WithLabelValues("alive").Inc()
	gv.WithLabelValues("alive").Inc()
	gv.WithLabelValues("suspect").Inc()
	gv.WithLabelValues("suspect").Dec()
	h.Observe(0.05)
	h.Observe(5)
	for _, v := range []float64{0.0001, 0.0005, 0.003, 1, 100} {
		hv.WithLabelValues("orders").Observe(v)
	}

	fams := parse(t, AppendText(nil, reg.Gather()))

	t.Run("counter keeps help and count", func(t *testing.T) {
		f := fams["t_events_total"]
		if f.GetType() != dto.MetricType_COUNTER || f.GetHelp() != "Events.\nSecond line with a \\ backslash." {
			t.Errorf("family = %v %q", f.GetType(), f.GetHelp())
		}
		if got := f.GetMetric()[0].GetCounter().GetValue(); got != 2 {
			t.Errorf("value = %v, want 2", got)
		}
	})
	t.Run("counter vector keeps label values byte for byte", func(t *testing.T) {
		got := map[string]float64{}
		for _, m := range fams["t_requests_total"].GetMetric() {
			l := labels(m)
			got[l["code"]+"|"+l["cluster"]] = m.GetCounter().GetValue()
		}
		want := map[string]float64{"200|orders": 1, "503|" + weird: 2}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("series (-want +got):\n%s", d)
		}
	})
	t.Run("gauges go up and down", func(t *testing.T) {
		if got := fams["t_connected"].GetMetric()[0].GetGauge().GetValue(); got != 1 {
			t.Errorf("t_connected = %v, want 1", got)
		}
		got := map[string]float64{}
		for _, m := range fams["t_members"].GetMetric() {
			got[labels(m)["state"]] = m.GetGauge().GetValue()
		}
		if d := cmp.Diff(map[string]float64{"alive": 2, "suspect": 0}, got); d != "" {
			t.Errorf("t_members (-want +got):\n%s", d)
		}
	})
	t.Run("histograms have cumulative buckets ending in +Inf, sum and count", func(t *testing.T) {
		m := fams["t_duration_seconds"].GetMetric()[0]
		if l := labels(m); l["cluster"] != "orders" {
			t.Errorf("labels = %v", l)
		}
		hist := m.GetHistogram()
		got := map[float64]uint64{}
		for _, b := range hist.GetBucket() {
			got[b.GetUpperBound()] = b.GetCumulativeCount()
		}
		want := map[float64]uint64{.0005: 2, .01: 3, 2.5: 4, math.Inf(1): 5}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("buckets (-want +got):\n%s", d)
		}
		if hist.GetSampleCount() != 5 || math.Abs(hist.GetSampleSum()-101.0036) > 1e-9 {
			t.Errorf("count, sum = %d, %v; want 5, 101.0036", hist.GetSampleCount(), hist.GetSampleSum())
		}
		if got := fams["t_wait_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); got != 2 {
			t.Errorf("t_wait_seconds count = %d, want 2", got)
		}
	})
	t.Run("the Go and process metrics are there", func(t *testing.T) {
		for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "go_gc_duration_seconds", "go_info", "process_resident_memory_bytes", "process_cpu_seconds_total"} {
			if fams[name] == nil {
				t.Errorf("%s missing", name)
			}
		}
		if g := fams["go_goroutines"].GetMetric()[0].GetGauge().GetValue(); g < 1 {
			t.Errorf("go_goroutines = %v", g)
		}
		if s := fams["go_gc_duration_seconds"]; s.GetType() != dto.MetricType_SUMMARY || len(s.GetMetric()[0].GetSummary().GetQuantile()) != 5 {
			t.Errorf("go_gc_duration_seconds = %v", s)
		}
	})
}

// instrument does the same to a metric and a client_golang registry.
func instrument(t *testing.T) (*Registry, *prometheus.Registry) {
	t.Helper()
	ours, theirs := NewRegistry(), prometheus.NewRegistry()
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	cv := NewCounterVec(CounterOpts{Name: "x_requests_total", Help: `Requests "by" cluster\code.`}, []string{"cluster", "code"})
	pcv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_requests_total", Help: `Requests "by" cluster\code.`}, []string{"cluster", "code"})
	gv := NewGaugeVec(GaugeOpts{Name: "x_members", Help: "Members."}, []string{"state"})
	pgv := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "x_members", Help: "Members."}, []string{"state"})
	hv := NewHistogramVec(HistogramOpts{Name: "x_seconds", Help: "Latency.", Buckets: buckets}, []string{"cluster"})
	phv := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "x_seconds", Help: "Latency.", Buckets: buckets}, []string{"cluster"})
	c := NewCounter(CounterOpts{Name: "x_total", Help: "Unlabelled."})
	pc := prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "Unlabelled."})
	ours.MustRegister(cv, gv, hv, c)
	theirs.MustRegister(pcv, pgv, phv, pc)
	for i, cl := range []string{"web", "orders", "a\"b\\c\nd", "orders/ring_hash"} {
		for _, code := range []string{"200", "503", "404"}[:i%3+1] {
			for range i + 1 {
				cv.WithLabelValues(cl, code).Inc()
				pcv.WithLabelValues(cl, code).Inc()
			}
		}
		for j := range 20 * (i + 1) {
			v := float64(j) * 0.00137 * float64(i+1)
			hv.WithLabelValues(cl).Observe(v)
			phv.WithLabelValues(cl).Observe(v)
		}
	}
	for _, st := range []string{"alive", "suspect", "alive", "dead"} {
		gv.WithLabelValues(st).Inc()
		pgv.WithLabelValues(st).Inc()
	}
	gv.WithLabelValues("suspect").Dec()
	pgv.WithLabelValues("suspect").Dec()
	for range 7 {
		c.Inc()
		pc.Inc()
	}
	cv.WithLabelValues("gone", "200").Inc()
	pcv.WithLabelValues("gone", "200").Inc()
	cv.DeleteLabelValues("gone", "200")
	pcv.DeleteLabelValues("gone", "200")
	return ours, theirs
}

func TestExpositionIsClientGolangsByteForByte(t *testing.T) {
	ours, theirs := instrument(t)
	mfs, err := theirs.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&want, mf); err != nil {
			t.Fatal(err)
		}
	}
	got := AppendText(nil, ours.Gather())
	if d := cmp.Diff(strings.Split(want.String(), "\n"), strings.Split(string(got), "\n")); d != "" {
		t.Errorf("exposition differs from client_golang's (-want +got):\n%s", d)
	}
}

func TestGoAndProcessFamiliesMatchClientGolang(t *testing.T) {
	theirs := prometheus.NewRegistry()
	theirs.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mfs, err := theirs.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, mf := range mfs {
		want[mf.GetName()] = strings.ToLower(mf.GetType().String()) + " " + mf.GetHelp()
	}
	ours := NewRegistry()
	ours.MustRegister(NewGoCollector(), NewProcessCollector())
	got := map[string]string{}
	for _, f := range ours.Gather() {
		if len(f.Samples) > 0 {
			got[f.Name] = f.Type.String() + " " + f.Help
		}
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("families (name: type help) differ from client_golang's (-want +got):\n%s", d)
	}
}
