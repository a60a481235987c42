package lb

import (
	"testing"
	"time"
)

func TestParseORCA(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   LoadReport
		wantOK bool
	}{
		{"the Node.js package's report", "TEXT application_utilization=0.42, cpu_utilization=0.5, rps_fractional=120.5, named_metrics.eventloop_delay_p99_ms=12.3",
			LoadReport{ApplicationUtilization: 0.42, CPUUtilization: 0.5, QPS: 120.5}, true},
		{"eps and no spaces", "TEXT cpu_utilization=0.9,rps_fractional=10,eps=2", LoadReport{CPUUtilization: 0.9, QPS: 10, EPS: 2}, true},
		{"unknown keys only", "TEXT mem_utilization=0.3", LoadReport{}, false},
		{"binary format is not read", "BIN CgQIARAB", LoadReport{}, false},
		{"JSON format is not read", `JSON {"cpu_utilization":0.3}`, LoadReport{}, false},
		{"malformed number drops the report", "TEXT cpu_utilization=abc, rps_fractional=3", LoadReport{}, false},
		{"negative drops the report", "TEXT cpu_utilization=-1, rps_fractional=3", LoadReport{}, false},
		{"pair without =", "TEXT cpu_utilization", LoadReport{}, false},
		{"empty", "", LoadReport{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseORCA([]byte(tc.in))
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("ParseORCA(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.wantOK)
			}
			if got, ok := ParseORCA(tc.in); got != tc.want || ok != tc.wantOK {
				t.Errorf("ParseORCA(string %q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestParseORCADoesNotAllocate(t *testing.T) {
	v := []byte("TEXT application_utilization=0.42, cpu_utilization=0.5, rps_fractional=120.5, named_metrics.eventloop_delay_p99_ms=12.3")
	if n := testing.AllocsPerRun(100, func() { ParseORCA(v) }); n != 0 {
		t.Errorf("ParseORCA allocates %v times", n)
	}
	sv := string(v)
	if n := testing.AllocsPerRun(100, func() { ParseORCA(sv) }); n != 0 {
		t.Errorf("ParseORCA on a string allocates %v times", n)
	}
}

func TestORCAWeight(t *testing.T) {
	cfg := LeastLoadedConfig{BlackoutPeriod: 10 * time.Second, WeightExpirationPeriod: time.Minute}.WithDefaults()
	t0 := time.Unix(1000, 0)
	report := func(l *Load, at time.Duration, r LoadReport) {
		(&Endpoint{Load: l}).ReportLoad(r, t0.Add(at))
	}
	t.Run("A58 formula after the blackout", func(t *testing.T) {
		l := new(Load)
		report(l, 0, LoadReport{ApplicationUtilization: 0.5, CPUUtilization: 0.9, QPS: 100, EPS: 10})
		if w := l.ORCAWeight(t0.Add(5*time.Second), cfg); w != 0 {
			t.Errorf("weight in blackout = %v, want 0", w)
		}
		report(l, 11*time.Second, LoadReport{ApplicationUtilization: 0.5, QPS: 100, EPS: 10})
		// 100 / (0.5 + 1.0 × 10/100) = 166.67
		if w := l.ORCAWeight(t0.Add(12*time.Second), cfg); w < 166 || w > 167 {
			t.Errorf("weight = %v, want 166.67", w)
		}
	})
	t.Run("CPU utilization when the application's is absent", func(t *testing.T) {
		l := new(Load)
		report(l, 0, LoadReport{CPUUtilization: 0.25, QPS: 50})
		if w := l.ORCAWeight(t0.Add(20*time.Second), cfg); w != 200 {
			t.Errorf("weight = %v, want 200", w)
		}
	})
	t.Run("empty reports are ignored", func(t *testing.T) {
		l := new(Load)
		report(l, 0, LoadReport{QPS: 50})
		report(l, 0, LoadReport{CPUUtilization: 0.5})
		if w := l.ORCAWeight(t0.Add(20*time.Second), cfg); w != 0 {
			t.Errorf("weight = %v, want 0", w)
		}
	})
	t.Run("expired weights restart the blackout", func(t *testing.T) {
		l := new(Load)
		report(l, 0, LoadReport{CPUUtilization: 0.5, QPS: 50})
		if w := l.ORCAWeight(t0.Add(2*time.Minute), cfg); w != 0 {
			t.Errorf("expired weight = %v, want 0", w)
		}
		report(l, 2*time.Minute+time.Second, LoadReport{CPUUtilization: 0.5, QPS: 50})
		if w := l.ORCAWeight(t0.Add(2*time.Minute+5*time.Second), cfg); w != 0 {
			t.Errorf("weight in the new blackout = %v, want 0", w)
		}
		if w := l.ORCAWeight(t0.Add(2*time.Minute+12*time.Second), cfg); w != 100 {
			t.Errorf("weight after the new blackout = %v, want 100", w)
		}
	})
	t.Run("untracked endpoint", func(t *testing.T) {
		(&Endpoint{}).ReportLoad(LoadReport{CPUUtilization: 1, QPS: 1}, t0)
		var l *Load
		if w := l.ORCAWeight(t0, cfg); w != 0 {
			t.Errorf("weight = %v, want 0", w)
		}
	})
}
