package xdsres

import (
	"fmt"

	corev3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/core/v3"
	tlsv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/extensions/transport_sockets/tls/v3"
)

// TLS transport sockets (Envoy's envoy.transport_sockets.tls).
const (
	// TLSTransportSocket is the name of Envoy's TLS transport socket.
	TLSTransportSocket = "envoy.transport_sockets.tls"
	// UpstreamTLSContextType is its upstream configuration.
	UpstreamTLSContextType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	// TransportSocketMatchKey is the endpoint filter_metadata key that
	// Cluster.transport_socket_matches entries match against.
	TransportSocketMatchKey = "envoy.transport_socket_match"
	// ClusterMetadataKey is the filter_metadata key of shoal's cluster
	// metadata: field "protocol" "tcp" marks a raw TCP service.
	ClusterMetadataKey = "shoal"
)

// UpstreamTLSContext returns ts's UpstreamTlsContext, nil when ts is not a
// TLS transport socket with one.
func UpstreamTLSContext(ts *corev3.TransportSocket) (*tlsv3.UpstreamTlsContext, error) {
	a := ts.GetTypedConfig()
	if ts.GetName() != TLSTransportSocket || a.GetTypeUrl() != UpstreamTLSContextType {
		return nil, nil
	}
	c := &tlsv3.UpstreamTlsContext{}
	if err := unmarshal.Unmarshal(a.GetValue(), c); err != nil {
		return nil, fmt.Errorf("transport_socket %q: %w", ts.GetName(), err)
	}
	return c, nil
}
