package xdsserver

import (
	"slices"
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"google.golang.org/protobuf/proto"
)

func cla(name string, port uint32) types.Resource {
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{Priority: port}}}
}

func claNames(t *testing.T, r *discoveryv3.DeltaDiscoveryResponse) []string {
	t.Helper()
	var out []string
	for _, r := range r.GetResources() {
		out = append(out, r.GetName())
	}
	return out
}

func sotwNames(t *testing.T, r cache.Response) []string {
	t.Helper()
	out, _ := r.GetDiscoveryResponse()
	var names []string
	for _, a := range out.GetResources() {
		var c endpointv3.ClusterLoadAssignment
		if err := a.UnmarshalTo(&c); err != nil {
			t.Fatal(err)
		}
		names = append(names, c.GetClusterName())
	}
	return names
}

func recvSotw(t *testing.T, ch chan cache.Response) cache.Response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	default:
		t.Fatal("no response")
	}
	return nil
}

func TestEDSCacheSotW(t *testing.T) {
	c := newEDSCache()
	c.UpdateResources(map[string]types.Resource{"a": cla("a", 1), "b": cla("b", 1)}, nil)
	for i, wildcard := range []bool{true, false} {
		var names []string
		if !wildcard {
			names = []string{"a", "c"}
		}
		sub := stream.NewSotwSubscription(names, true)
		ch := make(chan cache.Response, 1)
		c.CreateWatch(&cache.Request{TypeUrl: resource.EndpointType, ResourceNames: names}, &sub, ch)
		r := recvSotw(t, ch)
		want := []string{"a", "b"}
		if !wildcard {
			want = []string{"a", "c"}
		}
		if got := sotwNames(t, r); !slices.Equal(got, want) {
			t.Fatalf("wildcard %v: first response %v, want %v", wildcard, got, want)
		}
		sub.SetReturnedResources(r.GetReturnedResources())
		// ACK: nothing new, the watch is parked.
		ch = make(chan cache.Response, 1)
		ack := &cache.Request{TypeUrl: resource.EndpointType, ResourceNames: names, VersionInfo: "eds-x"}
		cancel, _ := c.CreateWatch(ack, &sub, ch)
		if len(ch) != 0 {
			t.Fatal("response to an ACK with nothing new")
		}
		if !wildcard {
			c.UpdateResources(map[string]types.Resource{"b": cla("b", 3)}, nil)
			if len(ch) != 0 {
				t.Fatal("named watch answered for a name it does not watch")
			}
		}
		c.UpdateResources(map[string]types.Resource{"b": cla("b", 2), "c": cla("c", uint32(2+i))}, []string{"a"})
		r = recvSotw(t, ch)
		want = []string{"b", "c"}
		if !wildcard {
			want = []string{"c"}
		}
		if got := sotwNames(t, r); !slices.Equal(got, want) {
			t.Fatalf("wildcard %v: update %v, want %v", wildcard, got, want)
		}
		cancel()
		c.UpdateResources(map[string]types.Resource{"a": cla("a", 1)}, nil)
	}
}

func TestEDSCacheDelta(t *testing.T) {
	c := newEDSCache()
	c.UpdateResources(map[string]types.Resource{"a": cla("a", 1), "b": cla("b", 1)}, nil)
	bHash := c.resources["b"].hash
	// Reconnecting with b held at its current version and a stale x.
	sub := stream.NewDeltaSubscription(nil, nil, map[string]string{"b": bHash, "x": "old"}, true)
	ch := make(chan cache.DeltaResponse, 2)
	c.CreateDeltaWatch(&cache.DeltaRequest{TypeUrl: resource.EndpointType}, &sub, ch)
	r := <-ch
	out, _ := r.GetDeltaDiscoveryResponse()
	if got := claNames(t, out); !slices.Equal(got, []string{"a"}) || !slices.Equal(out.GetRemovedResources(), []string{"x"}) {
		t.Fatalf("first response %v removed %v", got, out.GetRemovedResources())
	}
	sub.SetReturnedResources(r.GetReturnedResources())
	cancel, _ := c.CreateDeltaWatch(&cache.DeltaRequest{TypeUrl: resource.EndpointType, ResponseNonce: "1"}, &sub, ch)
	if len(ch) != 0 {
		t.Fatal("response to an ACK with nothing new")
	}
	c.UpdateResources(map[string]types.Resource{"c": cla("c", 1)}, []string{"a"})
	r = <-ch
	out, _ = r.GetDeltaDiscoveryResponse()
	if got := claNames(t, out); !slices.Equal(got, []string{"c"}) || !slices.Equal(out.GetRemovedResources(), []string{"a"}) {
		t.Fatalf("update %v removed %v", got, out.GetRemovedResources())
	}
	if out.GetResources()[0].GetVersion() != cache.HashResource(mustMarshal(t, cla("c", 1))) {
		t.Fatal("delta resource version is not the content hash")
	}
	cancel()
	// A cancelled watch is not sent to.
	sub.SetReturnedResources(r.GetReturnedResources())
	cancel, _ = c.CreateDeltaWatch(&cache.DeltaRequest{TypeUrl: resource.EndpointType, ResponseNonce: "2"}, &sub, ch)
	cancel()
	c.UpdateResources(map[string]types.Resource{"d": cla("d", 1)}, nil)
	if len(ch) != 0 {
		t.Fatal("cancelled watch answered")
	}
	// Behind by two updates: gets both.
	c.UpdateResources(map[string]types.Resource{"e": cla("e", 1)}, nil)
	c.CreateDeltaWatch(&cache.DeltaRequest{TypeUrl: resource.EndpointType, ResponseNonce: "3"}, &sub, ch)
	r = <-ch
	out, _ = r.GetDeltaDiscoveryResponse()
	if got := claNames(t, out); !slices.Equal(got, []string{"d", "e"}) {
		t.Fatalf("catch-up %v", got)
	}
}

func mustMarshal(t *testing.T, r types.Resource) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
