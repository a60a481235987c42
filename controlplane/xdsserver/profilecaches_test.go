package xdsserver

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/shoal-mesh/shoal/controlplane/xds"
)

// testCluster is cluster name in revision rev: another rev is another
// content.
func testCluster(name string, rev int64) types.Resource {
	return &clusterv3.Cluster{Name: name, AltStatName: strconv.FormatInt(rev, 10)}
}

// oneProfile puts every node in one snapshot.
type oneProfile struct{}

func (oneProfile) ID(*corev3.Node) string { return "p" }

// publishes are what the differential test publishes, in order: each step
// is a whole state, built anew (new values) unless it says same.
var publishes = []struct {
	name  string
	state map[string]int64
}{
	{"first state", map[string]int64{"a": 1, "b": 1, "c": 1}},
	{"b changes", map[string]int64{"a": 1, "b": 2, "c": 1}},
	{"d appears", map[string]int64{"a": 1, "b": 2, "c": 1, "d": 1}},
	{"a goes", map[string]int64{"b": 2, "c": 1, "d": 1}},
	{"same content, new values", map[string]int64{"b": 2, "c": 1, "d": 1}},
	{"empty", map[string]int64{}},
	{"back", map[string]int64{"a": 3, "d": 1}},
}

func stateResources(st map[string]int64) []types.Resource {
	var out []types.Resource
	for _, n := range sortedKeys(st) {
		out = append(out, testCluster(n, st[n]))
	}
	return out
}

// oldPublish is what the publisher did with go-control-plane's
// SnapshotCache: a snapshot versioned with hashVersion, set only when the
// version changed.
type oldPublish struct {
	c       cache.SnapshotCache
	version string
}

func (o *oldPublish) publish(tb testing.TB, rs []types.Resource) {
	tb.Helper()
	names := make([]string, len(rs))
	hashes := map[string]string{}
	for i, r := range rs {
		names[i] = cache.GetResourceName(r)
		hashes[names[i]] = xds.HashResource(r)
	}
	v := hashVersion(names, hashes)
	if v == o.version {
		return
	}
	o.version = v
	snap := &cache.Snapshot{}
	snap.Resources[types.Cluster] = cache.NewResources(v, rs)
	if err := o.c.SetSnapshot(context.Background(), "p", snap); err != nil {
		tb.Fatal(err)
	}
}

// seenResponse is what a test stream saw of one response, in a form that
// does not depend on the order of resources.
type seenResponse struct {
	Version   string
	Resources []string // name@version#revision (delta) or name#revision (SotW), sorted
	Removed   []string
}

// simStream plays the go-control-plane server for one stream of one type
// against a cache: it keeps the subscription, creates watches as requests
// arrive and takes responses as the server would.
type simStream struct {
	c     cache.ConfigWatcher
	delta bool
	names []string
	sub   stream.Subscription
	ch    chan cache.Response
	dch   chan cache.DeltaResponse
	nonce int
	// cancel is the open watch's.
	cancel func()
}

var simNode = &corev3.Node{Id: "n", UserAgentName: "envoy"}

func newSimStream(c cache.ConfigWatcher, delta bool, names []string) *simStream {
	s := &simStream{c: c, delta: delta, names: names, ch: make(chan cache.Response, 1), dch: make(chan cache.DeltaResponse, 1)}
	if delta {
		s.sub = stream.NewDeltaSubscription(names, nil, nil, true)
	} else {
		s.sub = stream.NewSotwSubscription(names, true)
	}
	return s
}

// request sends a request naming version (SotW) and the last nonce, as an
// ACK (or, with an older version, a NACK) does.
func (s *simStream) request(tb testing.TB, version string) {
	tb.Helper()
	if s.cancel != nil {
		s.cancel()
	}
	nonce := ""
	if s.nonce > 0 {
		nonce = strconv.Itoa(s.nonce)
	}
	var err error
	if s.delta {
		req := &cache.DeltaRequest{Node: simNode, TypeUrl: resource.ClusterType, ResponseNonce: nonce}
		if s.nonce == 0 {
			req.ResourceNamesSubscribe = s.names
		}
		s.cancel, err = s.c.CreateDeltaWatch(req, &s.sub, s.dch)
	} else {
		req := &cache.Request{Node: simNode, TypeUrl: resource.ClusterType, ResourceNames: s.names, VersionInfo: version, ResponseNonce: nonce}
		s.sub.SetResourceSubscription(s.names)
		s.cancel, err = s.c.CreateWatch(req, &s.sub, s.ch)
	}
	if err != nil {
		tb.Fatal(err)
	}
	if s.cancel == nil {
		s.cancel = func() {}
	}
}

// next takes the response sent since the last one, if any, and records
// what the client was sent as the server does.
func (s *simStream) next(tb testing.TB) (*discoveryv3.DiscoveryResponse, *discoveryv3.DeltaDiscoveryResponse, bool) {
	tb.Helper()
	select {
	case r := <-s.ch:
		out, err := r.GetDiscoveryResponse()
		if err != nil {
			tb.Fatal(err)
		}
		s.sub.SetReturnedResources(r.GetReturnedResources())
		s.nonce++
		return out, nil, true
	case r := <-s.dch:
		out, err := r.GetDeltaDiscoveryResponse()
		if err != nil {
			tb.Fatal(err)
		}
		s.sub.SetReturnedResources(r.GetNextVersionMap())
		s.nonce++
		return nil, out, true
	default:
		return nil, nil, false
	}
}

// take is next, summarized.
func (s *simStream) take(tb testing.TB) (seenResponse, bool) {
	tb.Helper()
	out, dout, ok := s.next(tb)
	switch {
	case !ok:
		return seenResponse{}, false
	case out != nil:
		var res []string
		for _, a := range out.GetResources() {
			res = append(res, clusterRevision(tb, a))
		}
		slices.Sort(res)
		return seenResponse{Version: out.GetVersionInfo(), Resources: res}, true
	}
	var res []string
	for _, d := range dout.GetResources() {
		res = append(res, d.GetName()+"@"+d.GetVersion()+"="+clusterRevision(tb, d.GetResource()))
	}
	slices.Sort(res)
	removed := slices.Clone(dout.GetRemovedResources())
	slices.Sort(removed)
	return seenResponse{Version: dout.GetSystemVersionInfo(), Resources: res, Removed: removed}, true
}

func clusterRevision(tb testing.TB, a *anypb.Any) string {
	tb.Helper()
	var c clusterv3.Cluster
	if err := a.UnmarshalTo(&c); err != nil {
		tb.Fatal(err)
	}
	return c.GetName() + "#" + c.GetAltStatName()
}

// runPublishes plays the publishes against one stream kind and returns, per step,
// what the stream was sent ("-" for nothing). SotW clients also NACK once.
func runPublishes(t *testing.T, publish func([]types.Resource), c cache.ConfigWatcher, delta bool, names []string) []string {
	t.Helper()
	s := newSimStream(c, delta, names)
	var log []string
	version := ""
	var step func(what string)
	step = func(what string) {
		r, ok := s.take(t)
		if !ok {
			log = append(log, what+": -")
			return
		}
		log = append(log, fmt.Sprintf("%s: %+v", what, r))
		prev := version
		version = r.Version
		s.request(t, version) // ACK
		if !delta && what == publishes[1].name {
			// NACK the second state: the request names the first.
			s.request(t, prev)
			step(what + " (NACKed)")
		}
	}
	for i, p := range publishes {
		publish(stateResources(p.state))
		if i == 0 {
			s.request(t, "")
		}
		step(p.name)
	}
	s.cancel()
	return log
}

// TestProfileCacheMatchesSnapshotCache plays the same publishes and
// requests against go-control-plane's SnapshotCache, as the publisher used
// it, and against a full-state resourceCache, and expects the same
// responses: same versions, same resources and removals.
func TestProfileCacheMatchesSnapshotCache(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delta bool
		names []string
	}{
		{"SotW wildcard", false, nil},
		{"SotW named", false, []string{"a", "d", "x"}},
		{"delta wildcard", true, nil},
		{"delta named", true, []string{"a", "d", "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := &oldPublish{c: cache.NewSnapshotCache(false, oneProfile{}, nil)}
			want := runPublishes(t, func(rs []types.Resource) { old.publish(t, rs) }, old.c, tc.delta, tc.names)
			rc := newResourceCache(resource.ClusterType, true)
			got := runPublishes(t, func(rs []types.Resource) {
				if err := rc.setResources(rs); err != nil {
					t.Fatal(err)
				}
			}, rc, tc.delta, tc.names)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("responses (-SnapshotCache +resourceCache):\n%s", diff)
			}
		})
	}
}

// TestProfileCacheSharesResponses checks that wildcard SotW clients at one
// version are sent one shared slice of resources, marshaled once, and that
// each client's record of what it holds is one entry.
func TestProfileCacheSharesResponses(t *testing.T) {
	rc := newResourceCache(resource.ClusterType, true)
	rs := stateResources(map[string]int64{"a": 1, "b": 1, "c": 1})
	if err := rc.setResources(rs); err != nil {
		t.Fatal(err)
	}
	var first []byte
	var outs [][]*clusterv3.Cluster
	for i := range 2 {
		s := newSimStream(rc, false, nil)
		s.request(t, "")
		r := <-s.ch
		if got := r.GetReturnedResources(); len(got) != 1 {
			t.Errorf("client %d: returned resources %v, want one entry", i, got)
		}
		out, _ := r.GetDiscoveryResponse()
		if i == 0 {
			first = out.GetResources()[0].GetValue()
		} else if &out.GetResources()[0].GetValue()[0] != &first[0] {
			t.Error("second client's resource was marshaled again")
		}
		var cs []*clusterv3.Cluster
		for _, a := range out.GetResources() {
			var c clusterv3.Cluster
			if err := a.UnmarshalTo(&c); err != nil {
				t.Fatal(err)
			}
			cs = append(cs, &c)
		}
		outs = append(outs, cs)
		s.cancel()
	}
	if !bytes.Equal(first, mustMarshal(t, rs[0])) {
		t.Error("shared resource is not the marshaled resource")
	}
	if len(outs[0]) != 3 || len(outs[1]) != 3 {
		t.Errorf("clients got %d and %d clusters, want 3", len(outs[0]), len(outs[1]))
	}
}

// TestProfileCachesUnknownType checks that a type the control plane does
// not serve is answered as the SnapshotCache answered it: a delta
// wildcard subscription gets one empty response with version "", a SotW
// request without a version waits, and the stream is not failed.
func TestProfileCachesUnknownType(t *testing.T) {
	const secretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
	p := newProfileCaches(xds.Profiles())
	dsub := stream.NewDeltaSubscription(nil, nil, nil, true)
	dch := make(chan cache.DeltaResponse, 1)
	if _, err := p.CreateDeltaWatch(&cache.DeltaRequest{Node: simNode, TypeUrl: secretType}, &dsub, dch); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-dch:
		out, _ := r.GetDeltaDiscoveryResponse()
		if len(out.GetResources()) != 0 || out.GetSystemVersionInfo() != "" || out.GetTypeUrl() != secretType {
			t.Errorf("delta response %v, want an empty %s response with version \"\"", out, secretType)
		}
	default:
		t.Error("no delta response to a wildcard subscription")
	}
	ssub := stream.NewSotwSubscription(nil, true)
	ch := make(chan cache.Response, 1)
	cancel, err := p.CreateWatch(&cache.Request{Node: simNode, TypeUrl: secretType}, &ssub, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	if len(ch) != 0 {
		t.Error("SotW request without a version answered")
	}
}
