package promadapter

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/shoal-mesh/shoal/internal/metric"
)

// text gathers reg and writes it as promhttp would.
func text(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func TestCollectorExportsEveryKindUnchanged(t *testing.T) {
	ours := metric.NewRegistry()
	c := metric.NewCounter(metric.CounterOpts{Name: "shoal_gossip_dead_events_total", Help: "Members declared dead."})
	gv := metric.NewGaugeVec(metric.GaugeOpts{Name: "shoal_gossip_members", Help: "Members by state."}, []string{"state"})
	hv := metric.NewHistogramVec(metric.HistogramOpts{Name: "t_seconds", Help: "T.", Buckets: []float64{.1, 1}}, []string{"b", "a"})
	empty := metric.NewCounterVec(metric.CounterOpts{Name: "t_empty_total", Help: "No series yet."}, []string{"result"})
	ours.MustRegister(c, gv, hv, empty)
	c.Inc()
	gv.WithLabelValues("alive").Inc()
	gv.WithLabelValues("alive").Inc()
	gv.WithLabelValues("suspect").Inc()
	hv.WithLabelValues("x", "y").Observe(0.5)
	hv.WithLabelValues("x", "y").Observe(7)

	theirs := prometheus.NewRegistry()
	if err := theirs.Register(New(ours)); err != nil {
		t.Fatalf("Register: %v", err)
	}
	empty.WithLabelValues("joined").Inc() // described while empty, collected now

	got := text(t, theirs)
	want := string(metric.AppendText(nil, ours.Gather()))
	if d := cmp.Diff(strings.Split(want, "\n"), strings.Split(got, "\n")); d != "" {
		t.Errorf("client_golang's exposition differs from the registry's own (-want +got):\n%s", d)
	}
}

func TestCollectorExportsGoSummary(t *testing.T) {
	ours := metric.NewRegistry()
	ours.MustRegister(metric.NewGoCollector())
	theirs := prometheus.NewRegistry()
	theirs.MustRegister(New(ours))
	mfs, err := theirs.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "go_gc_duration_seconds" {
			if mf.GetType() != dto.MetricType_SUMMARY || len(mf.GetMetric()[0].GetSummary().GetQuantile()) != 5 {
				t.Errorf("go_gc_duration_seconds = %v, want a summary with 5 quantiles", mf)
			}
			return
		}
	}
	t.Error("go_gc_duration_seconds missing")
}

func TestCollectorExportsTheFamiliesOfItsCreation(t *testing.T) {
	ours := metric.NewRegistry()
	c := metric.NewCounter(metric.CounterOpts{Name: "t_total", Help: "T."})
	ours.MustRegister(c)
	c.Inc()
	theirs := prometheus.NewRegistry()
	col := New(ours)
	theirs.MustRegister(col)
	late := metric.NewCounter(metric.CounterOpts{Name: "t_late_total", Help: "Registered after New."})
	ours.MustRegister(late)
	late.Inc()
	if got := text(t, theirs); !strings.Contains(got, "t_total 1") || strings.Contains(got, "t_late_total") {
		t.Errorf("exposition = %q, want t_total and not t_late_total", got)
	}
	ours.Unregister(c)
	if got := text(t, theirs); got != "" {
		t.Errorf("after the metric's Unregister: %q, want nothing", got)
	}
	if !theirs.Unregister(col) {
		t.Error("Unregister(collector) = false: a described collector must be removable")
	}
}
