package xds

import (
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/shoal-mesh/shoal/registry"
)

// mTLS in xDS, expressed as Envoy and Istio do (ARCHITECTURE.md, "Contract:
// identity"): an endpoint registered with "tls": "mtls" carries the
// metadata envoy.transport_socket_match {tls: mtls}; its cluster has a
// transport_socket_matches entry for that metadata with an
// envoy.transport_sockets.tls UpstreamTlsContext whose certificate and
// trust bundle come from SDS secrets named "default" and "ROOTCA" and whose
// server SAN must be the destination service's SPIFFE ID. Endpoints
// without the metadata match no entry and keep the cluster's (plain)
// transport, so a service can move to mTLS one instance at a time.
const (
	transportSocketMatchKey = "envoy.transport_socket_match"
	tlsMatchName            = "tlsMode-mtls"
	tlsTransportSocket      = "envoy.transport_sockets.tls"
	sdsCertName             = "default"
	sdsRootName             = "ROOTCA"
	defaultTrustDomain      = "shoal.local"
	defaultNamespace        = "default"
)

// hasMTLS reports whether some instance of svc is an mTLS endpoint.
func (t *translator) hasMTLS(svc string) bool {
	return slices.ContainsFunc(t.services[svc], func(ep registry.Endpoint) bool { return ep.TLS == registry.TLSMutual })
}

// serviceSPIFFEID is the identity a service's mTLS endpoints present.
// Instances outside Kubernetes are in the default namespace.
func (t *translator) serviceSPIFFEID(svc string) string {
	td := t.trustDomain
	if td == "" {
		td = defaultTrustDomain
	}
	return "spiffe://" + td + "/ns/" + defaultNamespace + "/svc/" + svc
}

// mtlsMatches returns the cluster's transport_socket_matches for svc.
func (t *translator) mtlsMatches(svc string) []*clusterv3.Cluster_TransportSocketMatch {
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsParams: &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{
			Name: sdsCertName, SdsConfig: adsConfigSource(),
		}},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: &tlsv3.CertificateValidationContext{
					MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
						SanType: tlsv3.SubjectAltNameMatcher_URI,
						Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: t.serviceSPIFFEID(svc)}},
					}},
				},
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: sdsRootName, SdsConfig: adsConfigSource()},
			},
		},
	}}
	return []*clusterv3.Cluster_TransportSocketMatch{{
		Name:  tlsMatchName,
		Match: mtlsMetadataStruct(),
		TransportSocket: &corev3.TransportSocket{
			Name:       tlsTransportSocket,
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)},
		},
	}}
}

func mtlsMetadataStruct() *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{"tls": structpb.NewStringValue(registry.TLSMutual)}}
}

// endpointMetadata is an mTLS endpoint's metadata; nil for plain ones.
func endpointMetadata(in *registry.Instance) *corev3.Metadata {
	if in.TLS != registry.TLSMutual {
		return nil
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{transportSocketMatchKey: mtlsMetadataStruct()}}
}
