// Package grafana holds the Grafana dashboard for shoal's Prometheus
// metrics (shoal-dashboard.json, import it in Grafana); its test checks that
// every metric the dashboard queries is one shoal exports.
package grafana

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

type dashboard struct {
	Title  string
	UID    string
	Panels []struct {
		Type    string
		Title   string
		Targets []struct{ Expr string }
	}
}

// exported returns the metric names registered in the repository's Go code
// (string literals "shoal_…" outside tests).
func exported(t *testing.T) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"(shoal_[a-z0-9_]+)"`)
	names := map[string]bool{}
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllSubmatch(b, -1) {
			names[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestDashboardQueriesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("shoal-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("shoal-dashboard.json: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Fatal("the dashboard needs a uid and a title to be imported")
	}
	have := exported(t)
	metric := regexp.MustCompile(`shoal_[a-z0-9_]+`)
	queried := map[string]bool{}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, name := range metric.FindAllString(tg.Expr, -1) {
				base := name
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					base = strings.TrimSuffix(base, suffix)
				}
				queried[base] = true
				if !have[base] {
					t.Errorf("panel %q queries %s, which shoal does not export", p.Title, name)
				}
			}
		}
	}
	for _, golden := range []string{"shoal_controlplane_edge_requests_total", "shoal_sidecar_request_duration_seconds", "shoal_sidecar_requests_total"} {
		if !queried[golden] {
			t.Errorf("the dashboard does not chart %s", golden)
		}
	}
	if t.Failed() {
		keys := make([]string, 0, len(have))
		for k := range have {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		t.Logf("exported: %v", keys)
	}
}
