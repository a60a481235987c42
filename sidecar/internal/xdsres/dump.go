package xdsres

import (
	"encoding/json"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/shoal-mesh/shoal/sidecar/internal/xdspb"
	// The extensions a resource may carry in an Any, so that /config_dump
	// prints their fields.
	_ "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/extensions/filters/http/router/v3"
	_ "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/extensions/load_balancing_policies/client_side_weighted_round_robin/v3"
	_ "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/extensions/load_balancing_policies/least_request/v3"
	_ "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/extensions/load_balancing_policies/maglev/v3"
	_ "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/extensions/load_balancing_policies/ring_hash/v3"
	_ "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/extensions/load_balancing_policies/round_robin/v3"
	_ "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/extensions/load_balancing_policies/wrr_locality/v3"
	_ "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/extensions/transport_sockets/tls/v3"
)

// dumpJSON prints as Envoy's /config_dump does: proto field names, and
// Anys with Envoy's type URL in "@type".
var dumpJSON = protojson.MarshalOptions{UseProtoNames: true, Resolver: envoyResolver{}}

// JSON returns the protojson form of one resource from its wire form, as
// Envoy's /config_dump prints it: {"@type": "type.googleapis.com/envoy...",
// fields...}. Fields outside the sidecar's subset are not printed.
func JSON(typeURL string, raw []byte) (json.RawMessage, error) {
	return dumpJSON.Marshal(&anypb.Any{TypeUrl: typeURL, Value: raw})
}

// envoyResolver resolves Envoy's type URLs to the subset's messages. A type
// the subset does not have resolves to xdspb.Opaque: it prints as its
// "@type" alone.
type envoyResolver struct{}

func (envoyResolver) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(subsetPrefix + name); err == nil {
		return mt, nil
	}
	return protoregistry.GlobalTypes.FindMessageByName(name)
}

func (r envoyResolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	name := protoreflect.FullName(url[strings.LastIndexByte(url, '/')+1:])
	if mt, err := r.FindMessageByName(name); err == nil {
		return mt, nil
	}
	return (&xdspb.Opaque{}).ProtoReflect().Type(), nil
}

func (envoyResolver) FindExtensionByName(field protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return nil, protoregistry.NotFound
}

func (envoyResolver) FindExtensionByNumber(message protoreflect.FullName, field protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return nil, protoregistry.NotFound
}
