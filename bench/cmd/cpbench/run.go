package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-mesh/shoal/bench/internal/proc"
	"github.com/shoal-mesh/shoal/internal/freeport"
)

func serviceName(i int) string { return fmt.Sprintf("svc-%04d", i) }

func instanceKey(svc string, i int) string {
	return "/shoal/v1/instances/" + svc + "/" + svc + "-" + strconv.Itoa(i)
}

func instanceValue(svc string, i int, addr string) string {
	b, _ := json.Marshal(map[string]any{"id": svc + "-" + strconv.Itoa(i), "service": svc,
		"address": addr, "port": 8080, "protocol": "http", "zone": "local", "weight": 1})
	return string(b)
}

// initialAddr is endpoint i of service s before any change: 127.0.x.y.
// Changed endpoints get 127.1xx.x.y (markerAddr), which no initial address
// contains, so a client finds a change by its address alone.
func initialAddr(s, i int) string {
	n := s*16 + i
	return fmt.Sprintf("127.0.%d.%d", n/250%250, n%250+1)
}

func markerAddr(seq int) string {
	return fmt.Sprintf("127.%d.%d.%d", 100+seq/65536%100, seq/256%256, seq%256)
}

// env is the control plane under test.
type env struct {
	xds, etcd, admin string
	cp               *proc.Proc // nil for an external control plane
}

// Run sets up, syncs the clients, runs the churn and writes the report.
func Run(ctx context.Context, cfg Config) error {
	rep := &report{Config: cfg, Start: time.Now()}
	work := cfg.WorkDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "shoal-cpbench-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	g := proc.NewGroup(strconv.Itoa(os.Getpid()), work)
	defer g.StopAll()
	e, err := startControlPlane(ctx, cfg, g, work)
	if err != nil {
		return err
	}
	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{e.etcd}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer etcd.Close()
	t0 := time.Now()
	if err := populate(ctx, etcd, cfg); err != nil {
		return err
	}
	rep.PopulateSeconds = time.Since(t0).Seconds()
	fmt.Fprintf(os.Stderr, "cpbench: %d services × %d endpoints written in %.1fs\n", cfg.Services, cfg.Endpoints, rep.PopulateSeconds)
	if err := measure(ctx, cfg, e, etcd, rep); err != nil {
		return err
	}
	return rep.write(cfg.ResultsDir)
}

func startControlPlane(ctx context.Context, cfg Config, g *proc.Group, work string) (*env, error) {
	if cfg.XDS != "" {
		return &env{xds: cfg.XDS, etcd: cfg.Etcd}, nil
	}
	var addrs [6]string
	for i := range addrs {
		a, err := freeport.Addr()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	e := &env{etcd: addrs[0], xds: addrs[2], admin: addrs[4]}
	args := []string{cfg.ShoalBin, "controlplane", "--data-dir", filepath.Join(work, "cp-data"),
		"--etcd-listen", e.etcd, "--etcd-peer-listen", addrs[1], "--xds-listen", e.xds,
		"--api-listen", addrs[3], "--admin-listen", e.admin, "--gossip-listen", addrs[5], "--log-level", "warn"}
	if cfg.ProfileDir != "" {
		args = append(args, "--pprof")
	}
	p, err := g.Start(proc.Spec{
		Name: "shoal-controlplane",
		Args: append(args, cfg.CPArgs...),
		Env:  cfg.CPEnv,
		CPUs: cfg.CPUs,
	})
	if err != nil {
		return nil, err
	}
	e.cp = p
	if err := waitReady(ctx, "http://"+e.admin+"/ready", p); err != nil {
		return nil, fmt.Errorf("control plane not ready: %w\n%s", err, p.Tail())
	}
	return e, nil
}

// populate writes every service's endpoints, 100 puts per transaction
// (etcd's default limit is 128 operations).
func populate(ctx context.Context, etcd *clientv3.Client, cfg Config) error {
	var ops []clientv3.Op
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := etcd.Txn(tctx).Then(ops...).Commit()
		ops = ops[:0]
		return err
	}
	for s := range cfg.Services {
		svc := serviceName(s)
		for i := range cfg.Endpoints {
			ops = append(ops, clientv3.OpPut(instanceKey(svc, i), instanceValue(svc, i, initialAddr(s, i))))
			if len(ops) == 100 {
				if err := flush(); err != nil {
					return fmt.Errorf("populate: %w", err)
				}
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("populate: %w", err)
	}
	return nil
}

// measure starts the clients, waits for their initial sync and runs the
// churn. What it could not measure lands in rep.Problems.
func measure(ctx context.Context, cfg Config, e *env, etcd *clientv3.Client, rep *report) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var cur atomic.Pointer[change]
	results := make(chan seen, 4*cfg.Clients)
	clients := make([]*client, cfg.Clients)
	t0 := time.Now()
	for i := range clients {
		delta := cfg.Mode == "delta" || (cfg.Mode == "mixed" && i%2 == 0)
		clients[i] = newClient(i, delta, cfg.Services, &cur, results)
		c := clients[i]
		wg.Go(func() { c.run(ctx, e.xds) })
	}
	synced := waitSynced(ctx, clients, cfg.Sync)
	rep.sync(clients, synced, time.Since(t0))
	fmt.Fprintf(os.Stderr, "cpbench: %d/%d clients synced in %.1fs\n", len(synced), len(clients), rep.SyncSeconds)
	if len(synced) == 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(cfg.Idle):
	}
	var u0 proc.Usage
	if e.cp != nil {
		u0, _ = proc.TreeUsage(e.cp.Pid())
	}
	churnStart := time.Now()
	rng := rand.New(rand.NewPCG(1, 2)) // the same churn every run
	for seq := range cfg.Changes {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s, i := rng.IntN(cfg.Services), rng.IntN(cfg.Endpoints)
		ch := &change{seq: seq, marker: []byte(markerAddr(seq)), written: time.Now()}
		cur.Store(ch)
		svc := serviceName(s)
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := etcd.Put(pctx, instanceKey(svc, i), instanceValue(svc, i, markerAddr(seq)))
		pcancel()
		if err != nil {
			return fmt.Errorf("churn put: %w", err)
		}
		rep.PutLatencies = append(rep.PutLatencies, time.Since(ch.written).Seconds()*1e3)
		got := collect(ctx, results, seq, len(synced), cfg.Wait)
		rep.change(seq, got, len(synced))
		select {
		case <-ctx.Done():
		case <-time.After(cfg.Interval):
		}
	}
	rep.ChurnSeconds = time.Since(churnStart).Seconds()
	if e.cp != nil {
		if u1, err := proc.TreeUsage(e.cp.Pid()); err == nil {
			tck := float64(proc.ClockTicks())
			rep.CPCPUSecondsChurn = float64(u1.Ticks-u0.Ticks) / tck
			rep.CPCPUSecondsTotal = float64(u1.Ticks) / tck
		}
		readMemory(ctx, cfg, e, rep)
	}
	return nil
}

// readMemory reads the control plane's RSS and heap once the clients, still
// connected, have been idle for cfg.Settle, and saves a heap profile with
// cfg.ProfileDir.
func readMemory(ctx context.Context, cfg Config, e *env, rep *report) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(cfg.Settle):
	}
	if u, err := proc.TreeUsage(e.cp.Pid()); err == nil {
		rep.CPRSSMiB = float64(u.RSSKB) / 1024
	}
	if st, err := statusKB(e.cp.Pid(), "RssAnon", "RssFile", "VmHWM"); err == nil {
		rep.CPRSSAnonMiB, rep.CPRSSFileMiB = float64(st["RssAnon"])/1024, float64(st["RssFile"])/1024
		rep.CPPeakRSSMiB = float64(st["VmHWM"]) / 1024
	}
	m, err := scrapeMetrics(ctx, "http://"+e.admin+"/metrics",
		"go_memstats_heap_inuse_bytes", "go_memstats_heap_alloc_bytes", "go_memstats_heap_idle_bytes",
		"go_memstats_heap_released_bytes", "go_memstats_heap_sys_bytes", "go_memstats_stack_inuse_bytes", "go_goroutines")
	if err != nil {
		rep.Problems = append(rep.Problems, "control-plane metrics: "+err.Error())
	} else {
		rep.CPHeap = m
	}
	if cfg.ProfileDir == "" {
		return
	}
	path := filepath.Join(cfg.ProfileDir, fmt.Sprintf("cp-heap-%d-%s.pb.gz", cfg.Clients, rep.Start.Format("20060102-150405")))
	if err := saveURL(ctx, "http://"+e.admin+"/debug/pprof/heap?gc=1", path); err != nil {
		rep.Problems = append(rep.Problems, "heap profile: "+err.Error())
		return
	}
	fmt.Fprintf(os.Stderr, "cpbench: control-plane heap profile in %s\n", path)
}

// waitSynced returns the clients that received every subscribed type
// before the timeout; a client whose stream failed is not waited for.
func waitSynced(ctx context.Context, clients []*client, timeout time.Duration) []*client {
	deadline := time.After(timeout)
	var out []*client
	for _, c := range clients {
		select {
		case <-c.synced:
			out = append(out, c)
		case <-c.done:
		case <-deadline:
			return syncedNow(clients)
		case <-ctx.Done():
			return syncedNow(clients)
		}
	}
	return out
}

func syncedNow(clients []*client) []*client {
	var out []*client
	for _, c := range clients {
		select {
		case <-c.synced:
			out = append(out, c)
		default:
		}
	}
	return out
}

// collect gathers the receipts of change seq until want arrived or wait
// passed; late receipts of earlier changes are dropped.
func collect(ctx context.Context, results <-chan seen, seq, want int, wait time.Duration) []seen {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var got []seen
	for len(got) < want {
		select {
		case s := <-results:
			if s.seq == seq {
				got = append(got, s)
			}
		case <-timer.C:
			return got
		case <-ctx.Done():
			return got
		}
	}
	return got
}

func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	idx := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(idx, 0), len(s)-1)]
}
