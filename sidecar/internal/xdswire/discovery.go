package xdswire

import (
	"maps"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// Type URLs of the resources the sidecar subscribes to, and of the nested
// configurations it decodes.
const (
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

	// HCMType is the HTTP connection manager network filter's config.
	HCMType = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	// HTTPProtocolOptionsType is the upstream HTTP protocol options of a
	// cluster (typed_extension_protocol_options).
	HTTPProtocolOptionsType = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	// HTTPProtocolOptionsKey is the typed_extension_protocol_options key
	// under which HTTPProtocolOptionsType is read.
	HTTPProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// ADS gRPC method names.
const (
	StreamAggregatedResourcesMethod = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
	DeltaAggregatedResourcesMethod  = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
)

// Any is a google.protobuf.Any: a type URL and the encoded message.
type Any struct {
	TypeURL string
	Value   []byte
}

// Status is a google.rpc.Status (error_detail of a NACK).
type Status struct {
	Code    int32
	Message string
}

func (s *Status) appendTo(b []byte) []byte {
	b = appendVarint(b, 1, uint64(int64(s.Code)))
	return appendString(b, 2, s.Message)
}

// Locality is envoy.config.core.v3.Locality.
type Locality struct {
	Region  string `json:"region,omitempty"`
	Zone    string `json:"zone,omitempty"`
	SubZone string `json:"sub_zone,omitempty"`
}

func (l *Locality) appendTo(b []byte) []byte {
	b = appendString(b, 1, l.Region)
	b = appendString(b, 2, l.Zone)
	return appendString(b, 3, l.SubZone)
}

func decodeLocality(b []byte, l *Locality) error {
	return walk(b, func(f *field) error {
		switch f.num {
		case 1:
			l.Region = f.str()
		case 2:
			l.Zone = f.str()
		case 3:
			l.SubZone = f.str()
		}
		return nil
	})
}

// Node is envoy.config.core.v3.Node, the subset the sidecar sends.
type Node struct {
	ID      string
	Cluster string
	// Metadata is sent as a google.protobuf.Struct of string values, in
	// key order.
	Metadata         map[string]string
	Locality         *Locality
	UserAgentName    string
	UserAgentVersion string
	ClientFeatures   []string
}

// Clone returns a deep copy of n.
func (n *Node) Clone() *Node {
	if n == nil {
		return nil
	}
	c := *n
	c.Metadata = maps.Clone(n.Metadata)
	if n.Locality != nil {
		l := *n.Locality
		c.Locality = &l
	}
	c.ClientFeatures = slices.Clone(n.ClientFeatures)
	return &c
}

func (n *Node) appendTo(b []byte) []byte {
	b = appendString(b, 1, n.ID)
	b = appendString(b, 2, n.Cluster)
	if n.Metadata != nil {
		b = appendMessage(b, 3, func(s []byte) []byte { return appendStruct(s, n.Metadata) })
	}
	if n.Locality != nil {
		b = appendMessage(b, 4, n.Locality.appendTo)
	}
	b = appendString(b, 6, n.UserAgentName)
	if n.UserAgentVersion != "" {
		// A oneof member: written even if empty would be, but empty means unset here.
		b = appendString(b, 7, n.UserAgentVersion)
	}
	return appendStrings(b, 10, n.ClientFeatures)
}

// appendStruct encodes fields as a google.protobuf.Struct whose values are
// strings (Value.string_value, field 3), sorted by key.
func appendStruct(b []byte, fields map[string]string) []byte {
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		b = appendMessage(b, 1, func(e []byte) []byte {
			e = protowire.AppendTag(e, 1, protowire.BytesType)
			e = protowire.AppendString(e, k)
			return appendMessage(e, 2, func(v []byte) []byte {
				v = protowire.AppendTag(v, 3, protowire.BytesType)
				return protowire.AppendString(v, fields[k])
			})
		})
	}
	return b
}

// DiscoveryRequest is a state-of-the-world request.
type DiscoveryRequest struct {
	VersionInfo   string
	Node          *Node
	ResourceNames []string
	TypeURL       string
	ResponseNonce string
	ErrorDetail   *Status
}

// Marshal encodes r.
func (r *DiscoveryRequest) Marshal() []byte {
	var b []byte
	b = appendString(b, 1, r.VersionInfo)
	if r.Node != nil {
		b = appendMessage(b, 2, r.Node.appendTo)
	}
	b = appendStrings(b, 3, r.ResourceNames)
	b = appendString(b, 4, r.TypeURL)
	b = appendString(b, 5, r.ResponseNonce)
	if r.ErrorDetail != nil {
		b = appendMessage(b, 6, r.ErrorDetail.appendTo)
	}
	return b
}

// DiscoveryResponse is a state-of-the-world response.
type DiscoveryResponse struct {
	VersionInfo string
	Resources   []Any
	TypeURL     string
	Nonce       string
}

// Unmarshal decodes b into r (reset first).
func (r *DiscoveryResponse) Unmarshal(b []byte) error {
	*r = DiscoveryResponse{}
	return walk(b, func(f *field) error {
		switch f.num {
		case 1:
			r.VersionInfo = f.str()
		case 2:
			t, v, err := decodeAny(f.bytes())
			if err != nil {
				f.fail("resource: %v", err)
			}
			r.Resources = append(r.Resources, Any{TypeURL: t, Value: v})
		case 4:
			r.TypeURL = f.str()
		case 5:
			r.Nonce = f.str()
		}
		return nil
	})
}

// DeltaDiscoveryRequest is an incremental request.
type DeltaDiscoveryRequest struct {
	Node                     *Node
	TypeURL                  string
	ResourceNamesSubscribe   []string
	ResourceNamesUnsubscribe []string
	// InitialResourceVersions is encoded in key order.
	InitialResourceVersions map[string]string
	ResponseNonce           string
	ErrorDetail             *Status
}

// Marshal encodes r.
func (r *DeltaDiscoveryRequest) Marshal() []byte {
	var b []byte
	if r.Node != nil {
		b = appendMessage(b, 1, r.Node.appendTo)
	}
	b = appendString(b, 2, r.TypeURL)
	b = appendStrings(b, 3, r.ResourceNamesSubscribe)
	b = appendStrings(b, 4, r.ResourceNamesUnsubscribe)
	for _, k := range slices.Sorted(maps.Keys(r.InitialResourceVersions)) {
		b = appendMessage(b, 5, func(e []byte) []byte {
			e = protowire.AppendTag(e, 1, protowire.BytesType)
			e = protowire.AppendString(e, k)
			return appendString(e, 2, r.InitialResourceVersions[k])
		})
	}
	b = appendString(b, 6, r.ResponseNonce)
	if r.ErrorDetail != nil {
		b = appendMessage(b, 7, r.ErrorDetail.appendTo)
	}
	return b
}

// DeltaResource is an envoy.service.discovery.v3.Resource.
type DeltaResource struct {
	Name    string
	Version string
	// Resource is nil for a name-only entry.
	Resource *Any
}

// DeltaDiscoveryResponse is an incremental response; it is also the form
// of one type's resources in the sidecar's state file.
type DeltaDiscoveryResponse struct {
	SystemVersionInfo string
	Resources         []DeltaResource
	TypeURL           string
	RemovedResources  []string
	Nonce             string
}

// Unmarshal decodes b into r (reset first).
func (r *DeltaDiscoveryResponse) Unmarshal(b []byte) error {
	*r = DeltaDiscoveryResponse{}
	return walk(b, func(f *field) error {
		switch f.num {
		case 1:
			r.SystemVersionInfo = f.str()
		case 2:
			var res DeltaResource
			f.msg("resource", func(b []byte) error { return decodeDeltaResource(b, &res) })
			r.Resources = append(r.Resources, res)
		case 4:
			r.TypeURL = f.str()
		case 5:
			r.Nonce = f.str()
		case 6:
			r.RemovedResources = append(r.RemovedResources, f.str())
		}
		return nil
	})
}

func decodeDeltaResource(b []byte, r *DeltaResource) error {
	return walk(b, func(f *field) error {
		switch f.num {
		case 1:
			r.Version = f.str()
		case 2:
			t, v, err := decodeAny(f.bytes())
			if err != nil {
				f.fail("%v", err)
			}
			r.Resource = &Any{TypeURL: t, Value: v}
		case 3:
			r.Name = f.str()
		}
		return nil
	})
}

// Marshal encodes r.
func (r *DeltaDiscoveryResponse) Marshal() []byte {
	var b []byte
	b = appendString(b, 1, r.SystemVersionInfo)
	for i := range r.Resources {
		res := &r.Resources[i]
		b = appendMessage(b, 2, func(m []byte) []byte {
			m = appendString(m, 1, res.Version)
			if res.Resource != nil {
				m = appendAny(m, 2, res.Resource.TypeURL, res.Resource.Value)
			}
			return appendString(m, 3, res.Name)
		})
	}
	b = appendString(b, 4, r.TypeURL)
	b = appendString(b, 5, r.Nonce)
	return appendStrings(b, 6, r.RemovedResources)
}
