package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// plotShares draws each target's per-instance share over time (warmup and
// measured run of its last successful round) with gnuplot, one panel per
// target, to png.
func plotShares(cfg Config, rep *report, png string) error {
	if _, err := exec.LookPath(cfg.GnuplotBin); err != nil {
		return fmt.Errorf("gnuplot: %w", err)
	}
	last := map[string]measurement{}
	for _, r := range rep.Runs {
		if r.Err == "" {
			last[r.Target.Name] = r
		}
	}
	var panels []measurement
	for _, s := range rep.Targets {
		if r, ok := last[s.Target.Name]; ok {
			panels = append(panels, r)
		}
	}
	if len(panels) == 0 {
		return fmt.Errorf("no successful run to plot")
	}
	ids := make([]string, 0, len(rep.Meta.Instances))
	roles := make([]string, 0, len(rep.Meta.Instances))
	for _, in := range rep.Meta.Instances {
		ids, roles = append(ids, in.ID), append(roles, in.ID+": "+in.Role)
	}
	dir, err := os.MkdirTemp("", "lbbench-chart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "shares.dat")
	if err := os.WriteFile(data, []byte(shareData(panels, ids, cfg.Bucket)), 0o644); err != nil {
		return err
	}
	script := filepath.Join(dir, "shares.gp")
	if err := os.WriteFile(script, []byte(shareScript(panels, ids, roles, data, png, cfg.Bucket)), 0o644); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cfg.GnuplotBin, script).CombinedOutput(); err != nil {
		return fmt.Errorf("gnuplot: %w: %s", err, out)
	}
	return nil
}

// shareData is one gnuplot data block per panel (blocks separated by two
// blank lines, addressed with `index`): the bucket's middle in seconds
// from the start of the warmup, then each instance's share in percent.
func shareData(panels []measurement, ids []string, bucket time.Duration) string {
	var b strings.Builder
	for i, m := range panels {
		if i > 0 {
			b.WriteString("\n\n")
		}
		fmt.Fprintf(&b, "# %s\n", m.Target)
		for j, bk := range m.Buckets {
			var total int64
			for _, id := range ids {
				total += bk[id]
			}
			if total == 0 {
				continue
			}
			fmt.Fprintf(&b, "%.2f", (float64(j)+0.5)*bucket.Seconds())
			for _, id := range ids {
				fmt.Fprintf(&b, " %.2f", float64(bk[id])*100/float64(total))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func shareScript(panels []measurement, ids, roles []string, data, png string, bucket time.Duration) string {
	var b strings.Builder
	height := 230*len(panels) + 60
	fmt.Fprintf(&b, "set terminal pngcairo size 1000,%d font 'sans,10'\nset output '%s'\n", height, png)
	fmt.Fprintf(&b, "set multiplot layout %d,1 title \"Share of answers per instance over time (%v buckets; left of the dashed line: warmup)\\n%s\" noenhanced\n",
		len(panels), bucket, strings.Join(roles, ";  "))
	b.WriteString("set yrange [0:100]\nset ylabel 'share %'\nset grid\nset key outside right\nset style data linespoints\nset pointsize 0.5\n")
	colors := []string{"#1b9e77", "#d95f02", "#7570b3"}
	for i, m := range panels {
		warm := float64(m.WarmupBuckets) * bucket.Seconds()
		b.WriteString("unset arrow\n")
		if m.WarmupBuckets > 0 {
			fmt.Fprintf(&b, "set arrow from %.2f,0 to %.2f,100 nohead dt 2 lc rgb 'gray40'\n", warm, warm)
		}
		xl := "''"
		if i == len(panels)-1 {
			xl = "'seconds from the start of the warmup'"
		}
		fmt.Fprintf(&b, "set xlabel %s\n", xl)
		fmt.Fprintf(&b, "set title '%s — p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms, %d errors (this round)' noenhanced\n",
			m.Target, m.P50, m.P99, m.P999, m.ErrorCount)
		var plots []string
		for j, id := range ids {
			plots = append(plots, fmt.Sprintf("'%s' index %d using 1:%d title '%s' noenhanced lc rgb '%s' lw 2", data, i, j+2, id, colors[j%len(colors)]))
		}
		b.WriteString("plot " + strings.Join(plots, ", ") + "\n")
	}
	b.WriteString("unset multiplot\n")
	return b.String()
}
