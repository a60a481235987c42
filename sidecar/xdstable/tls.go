package xdstable

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	clusterv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/cluster/v3"
	endpointv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/endpoint/v3"
	tlsv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/extensions/transport_sockets/tls/v3"
	"github.com/shoal-mesh/shoal/sidecar/internal/xdsres"
)

// tlsMatch is one of a cluster's transport_socket_matches whose transport
// socket is TLS: the endpoint metadata it selects, and the URI SAN its
// UpstreamTlsContext requires of the server ("" if none).
type tlsMatch struct {
	match *structpb.Struct
	// plain marks a match whose transport is not TLS.
	plain bool
	san   string
}

// tlsMatches returns c's TLS transport socket matches, in order (Envoy
// takes the first that matches an endpoint).
func tlsMatches(c *clusterv3.Cluster) ([]tlsMatch, error) {
	var out []tlsMatch
	for _, m := range c.GetTransportSocketMatches() {
		ctx, err := xdsres.UpstreamTLSContext(m.GetTransportSocket())
		if err != nil {
			return nil, err
		}
		if ctx == nil {
			// A plain (or unknown) transport for the endpoints it
			// matches: they are not mTLS endpoints.
			out = append(out, tlsMatch{match: m.GetMatch(), plain: true})
			continue
		}
		out = append(out, tlsMatch{match: m.GetMatch(), san: uriSAN(ctx)})
	}
	return out, nil
}

// uriSAN is the first exact URI SAN an UpstreamTlsContext requires.
func uriSAN(ctx *tlsv3.UpstreamTlsContext) string {
	vc := ctx.GetCommonTlsContext().GetValidationContext()
	if cvc := ctx.GetCommonTlsContext().GetCombinedValidationContext(); cvc != nil {
		vc = cvc.GetDefaultValidationContext()
	}
	for _, m := range vc.GetMatchTypedSubjectAltNames() {
		if m.GetSanType() == tlsv3.SubjectAltNameMatcher_URI && m.GetMatcher().GetExact() != "" {
			return m.GetMatcher().GetExact()
		}
	}
	return ""
}

// endpointTLS reports whether le is an mTLS endpoint and the SAN to
// require: Envoy's transport socket matching, the first of matches whose
// every field equals the same field of le's
// filter_metadata["envoy.transport_socket_match"] (an empty match matches
// every endpoint).
func endpointTLS(matches []tlsMatch, le *endpointv3.LbEndpoint) (mtls bool, san string) {
	md := le.GetMetadata().GetFilterMetadata()[xdsres.TransportSocketMatchKey].GetFields()
	for _, m := range matches {
		if !matchesAll(m.match.GetFields(), md) {
			continue
		}
		if m.plain {
			return false, ""
		}
		return true, m.san
	}
	return false, ""
}

func matchesAll(want, have map[string]*structpb.Value) bool {
	for k, v := range want {
		if h, ok := have[k]; !ok || !proto.Equal(v, h) {
			return false
		}
	}
	return true
}
