package xds

import (
	"fmt"
	"log/slog"
	"runtime"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
)

// updater is the part of a cache the publisher uses.
type updater interface {
	cache.Cache
	UpdateResources(map[string]types.Resource, []string) error
}

func benchCacheUpdate(b *testing.B, c updater, clients int) {
	all := map[string]types.Resource{}
	for i := range 1000 {
		n := fmt.Sprintf("svc-%04d", i)
		all[n] = cla(n, 1)
	}
	c.UpdateResources(all, nil)
	subs := make([]stream.Subscription, clients)
	chs := make([]chan cache.Response, clients)
	for i := range clients {
		subs[i] = stream.NewSotwSubscription(nil, true)
		chs[i] = make(chan cache.Response, 1)
		c.CreateWatch(&cache.Request{TypeUrl: endpointType}, subs[i], chs[i])
		r := <-chs[i]
		subs[i].SetReturnedResources(r.GetReturnedResources())
		c.CreateWatch(&cache.Request{TypeUrl: endpointType, VersionInfo: "eds-1"}, subs[i], chs[i])
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap := float64(ms.HeapAlloc) / (1 << 20)
	b.ResetTimer()
	defer b.ReportMetric(heap, "heapMiB")
	for k := range b.N {
		c.UpdateResources(map[string]types.Resource{"svc-0007": cla("svc-0007", uint32(k+2))}, nil)
		for i := range clients {
			r := <-chs[i]
			subs[i].SetReturnedResources(r.GetReturnedResources())
			c.CreateWatch(&cache.Request{TypeUrl: endpointType, VersionInfo: "eds-1"}, subs[i], chs[i])
		}
	}
}

// BenchmarkLinearCacheUpdate and BenchmarkEDSCacheUpdate: one changed
// assignment among 1,000, sent to 1,000 wildcard SotW clients that then
// re-create their watch (the ACK), with go-control-plane's LinearCache and
// with edsCache; heapMiB is the heap with every client parked.
func BenchmarkLinearCacheUpdate(b *testing.B) {
	benchCacheUpdate(b, cache.NewLinearCache(endpointType, cache.WithVersionPrefix(edsVersionPrefix), cache.WithLogger(logAdapter{slog.New(slog.DiscardHandler)})), 1000)
}
func BenchmarkEDSCacheUpdate(b *testing.B) { benchCacheUpdate(b, newEDSCache(endpointType), 1000) }
