package xds

import (
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/shoal-mesh/shoal/identity/grpcbootstrap"
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

// allMTLS reports whether svc has instances and every one is an mTLS
// endpoint.
func (t *translator) allMTLS(svc string) bool {
	eps := t.services[svc]
	return len(eps) > 0 && !slices.ContainsFunc(eps, func(ep registry.Endpoint) bool { return ep.TLS != registry.TLSMutual })
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

// Proxyless gRPC (gRFC A29, "xDS-Based Security for gRPC Clients and
// Servers") takes its certificates from certificate provider instances
// named in its bootstrap's certificate_providers, not from SDS: the
// cluster's transport_socket names the instance CertProviderInstance
// (`shoal identity fetch --grpc-bootstrap` writes it as a file_watcher of
// the files it keeps fresh) with the certificate names Istio uses for its
// SDS secrets. The file_watcher plugin ignores the names; other providers
// may not.
const (
	CertProviderInstance = grpcbootstrap.CertProviderInstance
	certNameIdentity     = sdsCertName
	certNameRoot         = sdsRootName
)

// grpcTransportSocket is the transport_socket of a proxyless client's
// cluster for svc when every instance of svc is an mTLS endpoint, else nil.
//
// A gRPC client cannot choose TLS per endpoint: it NACKs a cluster with
// transport_socket_matches, and the security config applies to the whole
// cluster. All-or-nothing keeps every client working that worked before:
// a gRPC client whose bootstrap has no certificate provider NACKs any
// cluster with a security config (its instance name is missing), so a
// service half migrated to mTLS stays plain for proxyless clients (they
// reach its plain instances; a handshake to an mTLS one fails and the
// channel skips it) and turns mTLS when its last plain instance is gone.
//
// gRPC takes only these fields: an identity and a root provider instance,
// and match_subject_alt_names (grpc-go matches it against the URI SANs
// among others; it does not read match_typed_subject_alt_names, and it
// NACKs tls_params and SDS secret configs). The server must present the
// destination service's SPIFFE ID.
func (t *translator) grpcTransportSocket(svc string) *corev3.TransportSocket {
	if !t.allMTLS(svc) {
		return nil
	}
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{
			InstanceName: CertProviderInstance, CertificateName: certNameIdentity,
		},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			CaCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{
				InstanceName: CertProviderInstance, CertificateName: certNameRoot,
			},
			MatchSubjectAltNames: []*matcherv3.StringMatcher{{ //nolint:staticcheck // the only SAN field gRPC reads (A29)
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: t.serviceSPIFFEID(svc)},
			}},
		}},
	}}
	return &corev3.TransportSocket{
		Name:       tlsTransportSocket,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)},
	}
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
