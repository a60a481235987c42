package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// loadReport is what a sidecar last saw of an instance's ORCA reports,
// and the weight gRFC A58 derives from it (rps / utilization).
type loadReport struct {
	Utilization float64 `json:"utilization"`
	RPS         float64 `json:"rps"`
	Weight      float64 `json:"a58_weight"`
	// PickerWeight is the weight the sidecar's picker used (the heaviest
	// 10000, none under a quarter of it).
	PickerWeight float64 `json:"picker_weight"`
}

// clustersDoc is the part of the sidecar's /clusters the bench reads.
type clustersDoc []struct {
	Endpoints []struct {
		Address      string  `json:"address"`
		PickerWeight float64 `json:"picker_weight"`
		LoadReport   *struct {
			Utilization float64 `json:"utilization"`
			RPS         float64 `json:"rps"`
		} `json:"load_report"`
	} `json:"endpoints"`
}

// sampleReports reads the sidecar's /clusters every second until ctx ends
// and returns, per instance id, the median of what it saw: how the
// instances' reports looked to least_loaded during the run. With trace,
// it also writes every sample there as CSV (seconds from the start,
// instance, utilization, rps, picker weight).
func sampleReports(ctx context.Context, admin string, idOf map[string]string, trace io.Writer) map[string]loadReport {
	samples := map[string][]loadReport{}
	var mu sync.Mutex
	start := time.Now()
	if trace != nil {
		fmt.Fprintln(trace, "t_s,instance,utilization,rps,picker_weight")
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			mu.Lock()
			defer mu.Unlock()
			out := map[string]loadReport{}
			for id, ss := range samples {
				var u, r, w, pw []float64
				for _, s := range ss {
					u, r, w, pw = append(u, s.Utilization), append(r, s.RPS), append(w, s.Weight), append(pw, s.PickerWeight)
				}
				out[id] = loadReport{Utilization: median(u), RPS: median(r), Weight: median(w), PickerWeight: median(pw)}
			}
			return out
		case <-tick.C:
		}
		body, err := getBody("http://"+admin+"/clusters", time.Second)
		if err != nil {
			continue
		}
		var doc clustersDoc
		if json.Unmarshal([]byte(body), &doc) != nil {
			continue
		}
		for _, c := range doc {
			for _, e := range c.Endpoints {
				id, ok := idOf[e.Address]
				if !ok || e.LoadReport == nil || e.LoadReport.Utilization <= 0 {
					continue
				}
				mu.Lock()
				samples[id] = append(samples[id], loadReport{Utilization: e.LoadReport.Utilization, RPS: e.LoadReport.RPS,
					Weight: e.LoadReport.RPS / e.LoadReport.Utilization, PickerWeight: e.PickerWeight})
				mu.Unlock()
				if trace != nil {
					fmt.Fprintf(trace, "%.1f,%s,%.3f,%.1f,%.0f\n", time.Since(start).Seconds(), id, e.LoadReport.Utilization, e.LoadReport.RPS, e.PickerWeight)
				}
			}
		}
	}
}
