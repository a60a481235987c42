package xdsserver

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
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
		c.CreateWatch(&cache.Request{TypeUrl: resource.EndpointType}, subs[i], chs[i])
		r := <-chs[i]
		subs[i].SetReturnedResources(r.GetReturnedResources())
		c.CreateWatch(&cache.Request{TypeUrl: resource.EndpointType, VersionInfo: "eds-1"}, subs[i], chs[i])
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
			c.CreateWatch(&cache.Request{TypeUrl: resource.EndpointType, VersionInfo: "eds-1"}, subs[i], chs[i])
		}
	}
}

// BenchmarkLinearCacheUpdate and BenchmarkEDSCacheUpdate: one changed
// assignment among 1,000, sent to 1,000 wildcard SotW clients that then
// re-create their watch (the ACK), with go-control-plane's LinearCache and
// with edsCache; heapMiB is the heap with every client parked.
func BenchmarkLinearCacheUpdate(b *testing.B) {
	benchCacheUpdate(b, cache.NewLinearCache(resource.EndpointType, cache.WithVersionPrefix(edsVersionPrefix), cache.WithLogger(logAdapter{slog.New(slog.DiscardHandler)})), 1000)
}
func BenchmarkEDSCacheUpdate(b *testing.B) { benchCacheUpdate(b, newEDSCache(), 1000) }

// logAdapter routes go-control-plane's logging to slog, formatting only
// what is enabled.
type logAdapter struct{ l *slog.Logger }

func (a logAdapter) Debugf(f string, args ...any) { a.debug(f, args) }
func (a logAdapter) Infof(f string, args ...any)  { a.debug(f, args) }

func (a logAdapter) debug(f string, args []any) {
	if a.l.Enabled(context.Background(), slog.LevelDebug) {
		a.l.Debug(fmt.Sprintf(f, args...))
	}
}

func (a logAdapter) Warnf(f string, args ...any)  { a.l.Warn(fmt.Sprintf(f, args...)) }
func (a logAdapter) Errorf(f string, args ...any) { a.l.Error(fmt.Sprintf(f, args...)) }

// benchSnapshotType: 1,000 clusters served to clients, half delta and half
// SotW, all wildcard, synced and parked after their ACK; an op is one
// changed cluster sent to every client, which ACKs it. heapMiB is the heap
// with every client parked, before the first op.
func benchSnapshotType(b *testing.B, c cache.ConfigWatcher, publish func([]types.Resource), clients int) {
	state := map[string]int64{}
	for i := range 1000 {
		state[fmt.Sprintf("svc-%04d", i)] = 1
	}
	publish(stateResources(state))
	streams := make([]*simStream, clients)
	for i := range streams {
		s := newSimStream(c, i%2 == 0, nil)
		s.request(b, "")
		out, dout, ok := s.next(b)
		if !ok {
			b.Fatal("no first response")
		}
		s.request(b, out.GetVersionInfo()+dout.GetSystemVersionInfo())
		streams[i] = s
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap := float64(ms.HeapAlloc) / (1 << 20)
	b.ResetTimer()
	defer b.ReportMetric(heap, "heapMiB")
	for k := range b.N {
		state["svc-0007"] = int64(k + 2)
		publish(stateResources(state))
		for _, s := range streams {
			out, dout, ok := s.next(b)
			if !ok {
				b.Fatal("change not sent")
			}
			s.request(b, out.GetVersionInfo()+dout.GetSystemVersionInfo())
		}
	}
}

// BenchmarkSnapshotCacheClusters and BenchmarkProfileCacheClusters run
// benchSnapshotType with 1,000 clients against go-control-plane's
// SnapshotCache, as the publisher used it, and against a full-state
// resourceCache.
func BenchmarkSnapshotCacheClusters(b *testing.B) {
	old := &oldPublish{c: cache.NewSnapshotCache(false, oneProfile{}, logAdapter{slog.New(slog.DiscardHandler)})}
	benchSnapshotType(b, old.c, func(rs []types.Resource) { old.publish(b, rs) }, 1000)
}

func BenchmarkProfileCacheClusters(b *testing.B) {
	rc := newResourceCache(resource.ClusterType, true)
	benchSnapshotType(b, rc, func(rs []types.Resource) {
		if err := rc.setResources(rs); err != nil {
			b.Fatal(err)
		}
	}, 1000)
}
