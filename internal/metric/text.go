package metric

import (
	"math"
	"strconv"
)

// AppendText appends fams in the Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/) and
// returns the extended buffer. Families without samples are left out, as
// client_golang does. Histograms write _bucket (with le, ending in +Inf),
// _sum and _count series; summaries write quantile series, _sum and
// _count.
func AppendText(b []byte, fams []Family) []byte {
	for i := range fams {
		f := &fams[i]
		if len(f.Samples) == 0 {
			continue
		}
		b = append(b, "# HELP "...)
		b = append(b, f.Name...)
		b = append(b, ' ')
		b = appendEscaped(b, f.Help, false)
		b = append(b, "\n# TYPE "...)
		b = append(b, f.Name...)
		b = append(b, ' ')
		b = append(b, f.Type.String()...)
		b = append(b, '\n')
		for j := range f.Samples {
			b = appendSample(b, f, &f.Samples[j])
		}
	}
	return b
}

func appendSample(b []byte, f *Family, s *Sample) []byte {
	switch f.Type {
	case HistogramType:
		for _, bk := range s.Buckets {
			b = appendSeries(b, f.Name, "_bucket", f.LabelNames, s.LabelValues, "le", bk.UpperBound)
			b = appendUint(b, bk.Count)
		}
	case SummaryType:
		for _, q := range s.Quantiles {
			b = appendSeries(b, f.Name, "", f.LabelNames, s.LabelValues, "quantile", q.Quantile)
			b = appendFloat(b, q.Value)
			b = append(b, '\n')
		}
	default:
		b = appendSeries(b, f.Name, "", f.LabelNames, s.LabelValues, "", 0)
		b = appendFloat(b, s.Value)
		return append(b, '\n')
	}
	b = appendSeries(b, f.Name, "_sum", f.LabelNames, s.LabelValues, "", 0)
	b = appendFloat(b, s.Sum)
	b = append(b, '\n')
	b = appendSeries(b, f.Name, "_count", f.LabelNames, s.LabelValues, "", 0)
	return appendUint(b, s.Count)
}

// appendSeries appends `name+suffix{labels} ` with an extra label (le or
// quantile) last when extra is not empty.
func appendSeries(b []byte, name, suffix string, names, values []string, extra string, extraValue float64) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	if len(names) > 0 || extra != "" {
		b = append(b, '{')
		for i, n := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, n...)
			b = append(b, `="`...)
			b = appendEscaped(b, values[i], true)
			b = append(b, '"')
		}
		if extra != "" {
			if len(names) > 0 {
				b = append(b, ',')
			}
			b = append(b, extra...)
			b = append(b, `="`...)
			b = appendFloat(b, extraValue)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	return append(b, ' ')
}

func appendUint(b []byte, v uint64) []byte {
	b = strconv.AppendUint(b, v, 10)
	return append(b, '\n')
}

// appendFloat writes v as client_golang does: +Inf, -Inf, NaN or the
// shortest representation that reads back exactly.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// appendEscaped escapes a backslash and a line feed (HELP text) and also a
// double quote (label values).
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}
