package xdsserver

import (
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// TestDroppedResponsesAreCounted: a response no stream can take (its
// channel already full) is counted, and a watch is answered once at most.
func TestDroppedResponsesAreCounted(t *testing.T) {
	c := newResourceCache(resource.ClusterType, true)
	drops := 0
	c.onDrop = func() { drops++ }

	full := &cacheWatch{ch: make(chan cache.Response, 1)}
	full.ch <- &cache.RawResponse{}
	c.sent(pendingSend{w: full, resp: &cache.RawResponse{}})
	if drops != 1 {
		t.Fatalf("drops = %d after a send to a full channel, want 1", drops)
	}
	c.sent(pendingSend{w: full, resp: &cache.RawResponse{}})
	if drops != 1 {
		t.Errorf("drops = %d after a second send to an answered watch, want still 1", drops)
	}

	ok := &cacheWatch{dch: make(chan cache.DeltaResponse, 1)}
	c.sent(pendingSend{w: ok, dres: &cache.RawDeltaResponse{}})
	if drops != 1 || len(ok.dch) != 1 {
		t.Errorf("delta send: drops %d, %d queued; want 1 and 1", drops, len(ok.dch))
	}
}
