package proxy

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/shoal-mesh/shoal/sidecar/lb/leastrequest"
	"github.com/shoal-mesh/shoal/sidecar/lb/ringhash"
	"github.com/shoal-mesh/shoal/sidecar/route"
)

// load sends n GETs from workers goroutines and returns responses per
// X-Backend and the number of failures. during, if set, runs once after
// n/4 requests.
func load(t *testing.T, addr, host string, n, workers int, hdr func(i int) (string, string), during func()) (map[string]int, int) {
	t.Helper()
	cl := client(t)
	var mu sync.Mutex
	counts := map[string]int{}
	var failures, next atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > n {
					return
				}
				if during != nil && i == n/4 {
					once.Do(during)
				}
				req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
				req.Host = host
				if hdr != nil {
					k, v := hdr(i)
					req.Header.Set(k, v)
				}
				res, err := cl.Do(req)
				if err != nil {
					failures.Add(1)
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					failures.Add(1)
					continue
				}
				mu.Lock()
				counts[res.Header.Get("X-Backend")]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return counts, int(failures.Load())
}

func TestWeightedSplit(t *testing.T) {
	v1, v2 := startBackend(t, "v1", nil), startBackend(t, "v2", nil)
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	tbl, err := route.New(route.Config{
		Loads: p.Loads(),
		VirtualHosts: []route.VirtualHost{{Name: "orders", Domains: []string{"orders"}, Routes: []route.Route{
			{Clusters: []route.WeightedCluster{{Name: "v1", Weight: 80}, {Name: "v2", Weight: 20}}},
		}}},
		Clusters: []route.ClusterConfig{{Name: "v1", Endpoints: endpoints(v1)}, {Name: "v2", Endpoints: endpoints(v2)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.SetTable(tbl)
	const n = 10000
	counts, failures := load(t, addr, "orders", n, 8, nil, nil)
	if failures != 0 {
		t.Fatalf("%d failures", failures)
	}
	if share := float64(counts["v1"]) / n * 100; share < 75 || share > 85 {
		t.Errorf("v1 share = %.1f %%, want 80 ± 5", share)
	}
}

func TestLoadBalancingStrategies(t *testing.T) {
	bs := []*backend{startBackend(t, "b0", nil), startBackend(t, "b1", nil), startBackend(t, "b2", nil)}
	t.Run("round robin spreads evenly", func(t *testing.T) {
		p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
		p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(bs...)}, route.Route{}))
		counts, failures := load(t, addr, "a", 300, 1, nil, nil)
		for _, b := range bs {
			if counts[b.name] != 100 || failures != 0 {
				t.Fatalf("counts = %v, failures %d; want 100 each", counts, failures)
			}
		}
	})
	t.Run("least request uses every endpoint", func(t *testing.T) {
		p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
		p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", LB: leastrequest.Builder{}, Endpoints: endpoints(bs...)}, route.Route{}))
		counts, failures := load(t, addr, "a", 300, 4, nil, nil)
		if len(counts) != 3 || failures != 0 {
			t.Fatalf("counts = %v, failures %d; want all three endpoints", counts, failures)
		}
	})
	t.Run("ring hash pins each header key to one endpoint", func(t *testing.T) {
		p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
		hash := []route.HashPolicy{{Kind: route.HashHeader, Name: "x-user"}}
		p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", LB: ringhash.Builder{}, Endpoints: endpoints(bs...)}, route.Route{Hash: hash}))
		owners := map[string]map[string]bool{}
		var mu sync.Mutex
		for k := range 20 {
			key := fmt.Sprintf("user-%d", k)
			counts, failures := load(t, addr, "a", 10, 2, func(int) (string, string) { return "X-User", key }, nil)
			if failures != 0 || len(counts) != 1 {
				t.Fatalf("key %s went to %v (failures %d), want one endpoint", key, counts, failures)
			}
			mu.Lock()
			for b := range counts {
				if owners[b] == nil {
					owners[b] = map[string]bool{}
				}
				owners[b][key] = true
			}
			mu.Unlock()
		}
		if len(owners) < 2 {
			t.Errorf("20 keys all hashed to %v", owners)
		}
	})
	t.Run("ring hash on source IP is sticky", func(t *testing.T) {
		p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
		hash := []route.HashPolicy{{Kind: route.HashSourceIP}}
		p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", LB: ringhash.Builder{}, Endpoints: endpoints(bs...)}, route.Route{Hash: hash}))
		if counts, failures := load(t, addr, "a", 50, 2, nil, nil); len(counts) != 1 || failures != 0 {
			t.Errorf("counts = %v, failures %d; want one endpoint for one client IP", counts, failures)
		}
	})
}

func TestKillBackendUnderLoad(t *testing.T) {
	bs := []*backend{startBackend(t, "b0", nil), startBackend(t, "b1", nil), startBackend(t, "b2", nil)}
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	retry := &route.RetryPolicy{On: route.RetryReset | route.RetryConnectFailure, NumRetries: 2}
	p.SetTable(simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(bs...)}, route.Route{Retry: retry}))
	kill := func() {
		bs[1].Listener.Close()
		bs[1].CloseClientConnections()
	}
	counts, failures := load(t, addr, "a", 3000, 8, nil, kill)
	if failures != 0 {
		t.Errorf("%d client-visible errors after killing a backend (counts %v)", failures, counts)
	}
}

func TestTableSwapUnderLoad(t *testing.T) {
	b1, b2 := startBackend(t, "one", nil), startBackend(t, "two", nil)
	p, addr := startProxy(t, Config{}, Mode{Kind: Outbound})
	tables := []*route.Table{
		simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(b1)}, route.Route{}),
		simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(b2)}, route.Route{}),
		simpleTable(t, p, route.ClusterConfig{Name: "a", Endpoints: endpoints(b1, b2)}, route.Route{}),
	}
	p.SetTable(tables[0])
	stop := make(chan struct{})
	swapped := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				swapped <- n
				return
			default:
			}
			p.SetTable(tables[n%len(tables)])
			n++
		}
	}()
	counts, failures := load(t, addr, "a", 2000, 8, nil, nil)
	close(stop)
	n := <-swapped
	if failures != 0 {
		t.Errorf("%d failures during %d table swaps (counts %v)", failures, n, counts)
	}
}
