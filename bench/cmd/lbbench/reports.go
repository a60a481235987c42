package main

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// loadReport is what a sidecar last saw of an instance's ORCA reports,
// and the weight gRFC A58 derives from it (rps / utilization).
type loadReport struct {
	Utilization float64 `json:"utilization"`
	RPS         float64 `json:"rps"`
	Weight      float64 `json:"a58_weight"`
}

// clustersDoc is the part of the sidecar's /clusters the bench reads.
type clustersDoc []struct {
	Endpoints []struct {
		Address    string `json:"address"`
		LoadReport *struct {
			Utilization float64 `json:"utilization"`
			RPS         float64 `json:"rps"`
		} `json:"load_report"`
	} `json:"endpoints"`
}

// sampleReports reads the sidecar's /clusters every second until ctx ends
// and returns, per instance id, the median of what it saw: how the
// instances' reports looked to least_loaded during the run.
func sampleReports(ctx context.Context, admin string, idOf map[string]string) map[string]loadReport {
	samples := map[string][]loadReport{}
	var mu sync.Mutex
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			mu.Lock()
			defer mu.Unlock()
			out := map[string]loadReport{}
			for id, ss := range samples {
				var u, r, w []float64
				for _, s := range ss {
					u, r, w = append(u, s.Utilization), append(r, s.RPS), append(w, s.Weight)
				}
				out[id] = loadReport{Utilization: median(u), RPS: median(r), Weight: median(w)}
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
					Weight: e.LoadReport.RPS / e.LoadReport.Utilization})
				mu.Unlock()
			}
		}
	}
}
