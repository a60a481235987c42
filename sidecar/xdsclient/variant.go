package xdsclient

import (
	"context"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	rpcpb "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/google/rpc"
	"github.com/shoal-mesh/shoal/sidecar/internal/xdsres"
)

// variant is one ADS stream of either protocol variant (delta or SotW).
// recv is called only by the stream's receive goroutine; the other methods
// only by the Run goroutine. Send errors are returned as is; the caller
// finds the stream status via recv (grpc.ClientStream.SendMsg contract).
type variant interface {
	// recv blocks for the next response and decodes it.
	recv() (*response, error)
	// subscribe moves typeURL's subscription to want ("*" for wildcard),
	// sending a request only if it changed. held are the versions of the
	// resources already held, for delta initial_resource_versions.
	subscribe(typeURL string, want map[string]bool, held map[string]string) error
	// ack accepts r; nack rejects it with err as error_detail.
	ack(r *response) error
	nack(r *response, err error) error
}

// response is a received response, decoded (unmarshalled and validated)
// on the receive goroutine.
type response struct {
	typeURL string
	nonce   string
	version string
	// u is the decoded update, nil if err is set.
	u *update
	// err is why the response cannot be applied; it is NACKed.
	err error
}

// adsStream is the bidirectional ADS stream: the generated
// AggregatedDiscoveryService client's streams less the types.
var adsStream = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// openVariant opens an ADS stream of the given mode on conn. The stream
// lives until ctx is cancelled. Messages are the generated subset's
// (sidecar/internal/xdspb), marshalled by gRPC's protobuf codec.
func openVariant(ctx context.Context, conn grpc.ClientConnInterface, mode Mode, node *Node) (variant, error) {
	method := xdsres.DeltaAggregatedResourcesMethod
	if mode == ModeSotW {
		method = xdsres.StreamAggregatedResourcesMethod
	}
	s, err := conn.NewStream(ctx, adsStream, method)
	if err != nil {
		return nil, err
	}
	if mode == ModeSotW {
		return newSotW(s, node), nil
	}
	return newDelta(s, node), nil
}

// nackStatus is the error_detail of a NACK.
func nackStatus(err error) *rpcpb.Status {
	return &rpcpb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
}

// sortedNames returns the names of set, sorted.
func sortedNames(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// sameSet reports whether a and b hold the same names.
func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for n := range a {
		if !b[n] {
			return false
		}
	}
	return true
}

var (
	_ variant = (*deltaStream)(nil)
	_ variant = (*sotwStream)(nil)
)
