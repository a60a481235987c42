package main

// The h2c/gRPC mode (--h2, issue 19): grpc-go backends, h2load sending
// unary gRPC calls (grpc.health.v1.Health/Check) with prior knowledge,
// nginx with grpc_pass, HAProxy with proto h2 on both sides, and the shoal
// sidecar with the backends registered as protocol grpc.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/shoal-mesh/shoal/bench/internal/proc"
)

// grpcCheckPath is the unary call h2load sends.
const grpcCheckPath = "/grpc.health.v1.Health/Check"

// grpcEmptyMessage is a gRPC length-prefixed empty HealthCheckRequest
// (service ""): no compression flag, length 0.
var grpcEmptyMessage = []byte{0, 0, 0, 0, 0}

// nginxGRPCConf is nginxConf for gRPC: an http2 listener (h2c prior
// knowledge) and grpc_pass to an upstream block with keepalive 256.
func nginxGRPCConf(dir, listen, strategy string, backends []string) string {
	conf := nginxConf(dir, listen, strategy, backends)
	// keepalive_requests also caps the requests of a client HTTP/2
	// connection (1,000 by default since nginx 1.19.7): nginx then sends
	// GOAWAY and h2load's streams in flight fail (~45 of 50,000 calls a
	// run). shoal and HAProxy set no such cap; neither does nginx here.
	conf = strings.Replace(conf, "        listen "+listen+";", "        listen "+listen+" http2;\n        keepalive_requests 1000000;", 1)
	return strings.Replace(conf, `            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
`, "            grpc_pass grpc://backend;\n", 1)
}

// haproxyH2Conf is haproxyConf with HTTP/2 on both sides (proto h2).
func haproxyH2Conf(listen, strategy string, backends []string) string {
	conf := haproxyConf(listen, strategy, backends)
	conf = strings.Replace(conf, "    bind "+listen+"\n", "    bind "+listen+" proto h2\n", 1)
	var out []string
	for _, line := range strings.Split(conf, "\n") {
		if strings.HasPrefix(line, "    server ") {
			line += " proto h2"
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// h2load runs one bounded h2load load of unary gRPC calls against addr on
// the load CPUs: Conns connections with 4 concurrent streams each, as in
// issue 19. The result is in wrkResult's terms (requests are calls).
func (h *harness) h2load(ctx context.Context, addr string, d time.Duration, dir string) (wrkResult, error) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	body := filepath.Join(dir, "grpc-request.bin")
	if err := os.WriteFile(body, grpcEmptyMessage, 0o644); err != nil {
		return wrkResult{}, err
	}
	logFile := filepath.Join(dir, fmt.Sprintf("h2load-%d.log", time.Now().UnixNano()))
	out, err := h.ps.Run(ctx, proc.Spec{
		Name: "h2load",
		Args: []string{h.cfg.H2LoadBin, "-c", strconv.Itoa(h.cfg.Conns), "-m", "4", "-t", strconv.Itoa(h.cfg.Threads),
			"-D", strconv.Itoa(secs), "-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers",
			"--log-file", logFile, "http://" + addr + grpcCheckPath},
		CPUs: h.loadCPUs(),
	}, d+30*time.Second)
	if err != nil {
		return wrkResult{}, err
	}
	r, err := parseH2Load(out)
	if err != nil {
		return r, err
	}
	r.P50us, r.P90us, r.P99us, err = logPercentiles(logFile)
	os.Remove(logFile)
	return r, err
}

// parseH2Load reads h2load's summary: "finished in 10.00s, 27400.00 req/s,
// …", "requests: N total, N started, N done, N succeeded, F failed, E
// errored, T timeout" and "status codes: N 2xx, …".
func parseH2Load(out string) (wrkResult, error) {
	var r wrkResult
	var haveRPS, haveReqs bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(strings.ReplaceAll(sc.Text(), ",", ""))
		switch {
		case len(f) >= 5 && f[0] == "finished" && f[4] == "req/s":
			v, err := strconv.ParseFloat(f[3], 64)
			if err != nil {
				return r, fmt.Errorf("h2load: %q: %w", sc.Text(), err)
			}
			r.RPS, haveRPS = v, true
		case len(f) >= 15 && f[0] == "requests:":
			succeeded, err := strconv.ParseInt(f[7], 10, 64)
			if err != nil {
				return r, fmt.Errorf("h2load: %q: %w", sc.Text(), err)
			}
			failed, _ := strconv.ParseInt(f[9], 10, 64)
			errored, _ := strconv.ParseInt(f[11], 10, 64)
			timeout, _ := strconv.ParseInt(f[13], 10, 64)
			r.Requests, haveReqs = succeeded, true
			r.SocketErrs = errored + timeout
			r.Non2xx = failed
		}
	}
	if !haveRPS || !haveReqs {
		return r, errors.New("h2load: output lacks req/s or the request counts")
	}
	return r, nil
}

// logPercentiles reads h2load's --log-file (start time, status, duration
// in µs, tab-separated) and returns the 50th, 90th and 99th percentile
// durations of the 2xx responses.
func logPercentiles(file string) (p50, p90, p99 float64, err error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.Close()
	var d []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) < 3 || !strings.HasPrefix(cols[1], "2") {
			continue
		}
		if v, err := strconv.ParseFloat(cols[2], 64); err == nil {
			d = append(d, v)
		}
	}
	if len(d) == 0 {
		return 0, 0, 0, errors.New("h2load log has no 2xx response")
	}
	slices.Sort(d)
	q := func(p float64) float64 { return d[min(len(d)-1, int(p*float64(len(d))))] }
	return q(0.50), q(0.90), q(0.99), nil
}

// waitGRPCAnswer polls a unary health check through addr until it
// succeeds, the timeout passes, or p exits.
func waitGRPCAnswer(ctx context.Context, addr string, timeout time.Duration, p *proc.Proc) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	return poll(ctx, timeout, p, func() error {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
		return err
	})
}
