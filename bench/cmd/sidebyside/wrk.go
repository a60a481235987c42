package main

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// wrkResult is what one wrk run reports.
type wrkResult struct {
	Requests   int64   `json:"requests"`
	RPS        float64 `json:"rps"`
	P50us      float64 `json:"p50_us"`
	P90us      float64 `json:"p90_us"`
	P99us      float64 `json:"p99_us"`
	SocketErrs int64   `json:"socket_errors"`
	Non2xx     int64   `json:"non_2xx"`
}

// parseWrk reads wrk 4's output as printed with --latency.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var haveReqs, haveRPS, haveP99 bool
	sc := bufio.NewScanner(strings.NewReader(out))
	inDist := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case line == "Latency Distribution":
			inDist = true
		case inDist && len(f) == 2 && strings.HasSuffix(f[0], "%"):
			us, err := parseDuration(f[1])
			if err != nil {
				return r, fmt.Errorf("wrk: percentile %q: %w", line, err)
			}
			switch f[0] {
			case "50%":
				r.P50us = us
			case "90%":
				r.P90us = us
			case "99%":
				r.P99us = us
				haveP99 = true
			}
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			inDist = false
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk: %q: %w", line, err)
			}
			r.Requests, haveReqs = n, true
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk: %q: %w", line, err)
			}
			r.RPS, haveRPS = v, true
		case strings.HasPrefix(line, "Socket errors:"):
			// "Socket errors: connect 0, read 0, write 0, timeout 0"
			for i := 2; i+1 < len(f); i += 2 {
				n, _ := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				r.SocketErrs += n
			}
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			r.Non2xx, _ = strconv.ParseInt(f[len(f)-1], 10, 64)
		}
	}
	if !haveReqs || !haveRPS || !haveP99 {
		return r, errors.New("wrk: output lacks the request count, Requests/sec or the 99% latency")
	}
	return r, nil
}

// parseDuration converts wrk's "612.00us", "1.20ms", "2.00s", "1.00m" to
// microseconds.
func parseDuration(s string) (float64, error) {
	units := []struct {
		suffix string
		us     float64
	}{{"us", 1}, {"ms", 1e3}, {"s", 1e6}, {"m", 60e6}, {"h", 3600e6}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, err
			}
			return v * u.us, nil
		}
	}
	return 0, fmt.Errorf("unknown unit in %q", s)
}
