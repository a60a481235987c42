package xdsserver

import (
	"cmp"
	"context"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"math"
	"slices"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// tracker records, per xDS stream and resource type, what was pushed and
// what the client ACKed or NACKed. It implements go-control-plane's server
// callbacks, which run on the stream goroutines: it only takes its mutex
// and never blocks.
type tracker struct {
	m   *metrics
	now func() time.Time
	// pushed, if set, is told the size of every response, outside mu; it
	// must not block.
	pushed func(bytes int)

	// mu guards streams and gone.
	mu      sync.Mutex
	streams map[streamKey]*streamState
	// gone is what closed streams had ACKed of EDS, by node id
	// (drainwait.go).
	gone map[string]goneNode
	// changed wakes WaitRemoved callers on EDS ACKs and stream closes.
	changed broadcast
}

var _ serverv3.Callbacks = (*tracker)(nil)

// streamKey identifies a stream: SotW and delta streams are numbered
// separately.
type streamKey struct {
	id    int64
	delta bool
}

type streamState struct {
	node        *corev3.Node
	peer        string
	connectedAt time.Time
	types       map[string]*typeState
	// eds is the load assignment the client ACKed last, per name (nil:
	// removed), for the drain gate (drainwait.go).
	eds map[string]*anypb.Any
}

type typeState struct {
	status *shoalv1.ResourceStatus
	// pushes maps the nonce of each un-answered push to its version and time.
	pushes map[string]push
}

type push struct {
	version string
	at      time.Time
	// eds are the load assignments an EDS push carried (drainwait.go).
	eds map[string]*anypb.Any
}

func newTracker(m *metrics, now func() time.Time) *tracker {
	return &tracker{m: m, now: now, streams: make(map[streamKey]*streamState), gone: make(map[string]goneNode)}
}

func (t *tracker) open(ctx context.Context, key streamKey) {
	st := &streamState{connectedAt: t.now(), types: make(map[string]*typeState)}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		st.peer = p.Addr.String()
	}
	t.mu.Lock()
	t.streams[key] = st
	t.mu.Unlock()
	t.m.streams.WithLabelValues(deltaLabel(key.delta)).Inc()
}

func (t *tracker) close(key streamKey) {
	t.mu.Lock()
	if st := t.streams[key]; st != nil {
		t.edsClosed(st)
	}
	delete(t.streams, key)
	t.mu.Unlock()
	t.m.streams.WithLabelValues(deltaLabel(key.delta)).Dec()
}

// request records the client's answer to an earlier push: an ACK, or a
// NACK when error_detail is set.
func (t *tracker) request(key streamKey, node *corev3.Node, typeURL, nonce string, nackErr string, isNack bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.streams[key]
	if st == nil {
		return
	}
	if node != nil && st.node == nil {
		st.node = node
	}
	ts := st.typeState(typeURL)
	p, ok := ts.pushes[nonce]
	if nonce == "" || !ok {
		return // a subscription, or an answer to a push we no longer track
	}
	delete(ts.pushes, nonce)
	now := t.now()
	if isNack {
		ts.status.NackedVersion, ts.status.NackError = p.version, nackErr
		t.m.nacks.WithLabelValues(shortType(typeURL)).Inc()
		return
	}
	ts.status.AckedVersion = p.version
	t.edsAcked(st, p)
	ts.status.LastAckTime = timestamppb.New(now)
	ts.status.LastPushToAck = durationpb.New(now.Sub(p.at))
	t.m.acks.WithLabelValues(shortType(typeURL)).Inc()
	t.m.pushToAck.WithLabelValues(shortType(typeURL)).Observe(now.Sub(p.at).Seconds())
}

// response records a push.
func (t *tracker) response(key streamKey, typeURL, version, nonce string, size int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.streams[key]
	if st == nil {
		return
	}
	ts := st.typeState(typeURL)
	ts.status.SentVersion = version
	// At most one push per type is un-answered (the server waits for the
	// answer before the next); a few stale ones are bounded all the same.
	if len(ts.pushes) >= 8 {
		clear(ts.pushes)
	}
	ts.pushes[nonce] = push{version: version, at: t.now()}
	t.m.pushes.WithLabelValues(shortType(typeURL), deltaLabel(key.delta)).Inc()
	t.m.bytes.WithLabelValues(shortType(typeURL), deltaLabel(key.delta)).Add(uint64(size))
}

// resumed records that a delta client subscribed to typeURL holding n
// resources already (initial_resource_versions).
func (t *tracker) resumed(key streamKey, typeURL string, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.streams[key]; st != nil {
		st.typeState(typeURL).status.ResumedResources = int32(min(n, math.MaxInt32))
	}
}

func (st *streamState) typeState(typeURL string) *typeState {
	ts := st.types[typeURL]
	if ts == nil {
		ts = &typeState{status: &shoalv1.ResourceStatus{TypeUrl: typeURL}, pushes: make(map[string]push)}
		st.types[typeURL] = ts
	}
	return ts
}

// clients returns a copy of every stream's status, sorted by node id.
func (t *tracker) clients() []*shoalv1.XdsClient {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*shoalv1.XdsClient, 0, len(t.streams))
	for key, st := range t.streams {
		c := &shoalv1.XdsClient{
			NodeId:      st.node.GetId(),
			NodeCluster: st.node.GetCluster(),
			UserAgent:   userAgent(st.node),
			Peer:        st.peer,
			Delta:       key.delta,
			ConnectedAt: timestamppb.New(st.connectedAt),
		}
		for _, typ := range sortedKeys(st.types) {
			c.Resources = append(c.Resources, proto.CloneOf(st.types[typ].status))
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *shoalv1.XdsClient) int {
		return cmp.Or(cmp.Compare(a.NodeId, b.NodeId), cmp.Compare(a.Peer, b.Peer), compareBool(!a.Delta, !b.Delta))
	})
	return out
}

func userAgent(n *corev3.Node) string {
	if n == nil {
		return ""
	}
	v := n.GetUserAgentVersion()
	if bv := n.GetUserAgentBuildVersion(); bv != nil && v == "" {
		v = bv.String()
	}
	if v == "" {
		return n.GetUserAgentName()
	}
	return n.GetUserAgentName() + "/" + v
}

// go-control-plane callbacks.

func (t *tracker) OnStreamOpen(ctx context.Context, id int64, _ string) error {
	t.open(ctx, streamKey{id: id})
	return nil
}

func (t *tracker) OnStreamClosed(id int64, _ *corev3.Node) { t.close(streamKey{id: id}) }

func (t *tracker) OnDeltaStreamOpen(ctx context.Context, id int64, _ string) error {
	t.open(ctx, streamKey{id: id, delta: true})
	return nil
}

func (t *tracker) OnDeltaStreamClosed(id int64, _ *corev3.Node) {
	t.close(streamKey{id: id, delta: true})
}

func (t *tracker) OnStreamRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	t.request(streamKey{id: id}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(),
		req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil)
	if names := req.GetResourceNames(); len(names) > 0 && req.GetTypeUrl() == resource.EndpointType {
		t.edsResubscribed(streamKey{id: id}, names)
	}
	return nil
}

func (t *tracker) OnStreamResponse(_ context.Context, id int64, req *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	size := proto.Size(resp)
	t.response(streamKey{id: id}, req.GetTypeUrl(), resp.GetVersionInfo(), resp.GetNonce(), size)
	if req.GetTypeUrl() == resource.EndpointType {
		t.edsSent(streamKey{id: id}, resp.GetNonce(), sotwAssignments(resp))
	}
	if t.pushed != nil {
		t.pushed(size)
	}
}

func (t *tracker) OnStreamDeltaRequest(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
	key := streamKey{id: id, delta: true}
	if n := len(req.GetInitialResourceVersions()); n > 0 && req.GetResponseNonce() == "" {
		t.resumed(key, req.GetTypeUrl(), n)
	}
	t.request(key, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(),
		req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil)
	if u := req.GetResourceNamesUnsubscribe(); len(u) > 0 && req.GetTypeUrl() == resource.EndpointType {
		t.edsUnsubscribed(key, u)
	}
	return nil
}

func (t *tracker) OnStreamDeltaResponse(id int64, req *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
	size := proto.Size(resp)
	t.response(streamKey{id: id, delta: true}, req.GetTypeUrl(), resp.GetSystemVersionInfo(), resp.GetNonce(), size)
	if req.GetTypeUrl() == resource.EndpointType {
		t.edsSent(streamKey{id: id, delta: true}, resp.GetNonce(), deltaAssignments(resp))
	}
	if t.pushed != nil {
		t.pushed(size)
	}
}

func (t *tracker) OnFetchRequest(context.Context, *discoveryv3.DiscoveryRequest) error { return nil }

func (t *tracker) OnFetchResponse(*discoveryv3.DiscoveryRequest, *discoveryv3.DiscoveryResponse) {}

func deltaLabel(delta bool) string {
	if delta {
		return "delta"
	}
	return "sotw"
}

// shortType is a type URL's last element, for metric labels.
func shortType(typeURL string) string {
	for i := len(typeURL) - 1; i >= 0; i-- {
		if typeURL[i] == '.' {
			return typeURL[i+1:]
		}
	}
	return typeURL
}
