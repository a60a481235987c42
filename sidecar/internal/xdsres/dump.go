package xdsres

import (
	"encoding/json"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/shoal-mesh/shoal/sidecar/internal/xdspb"
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

// envoyResolver resolves Envoy's type URLs to the subset's messages linked
// into the binary. A type the subset does not have, or whose package no
// part of the sidecar imports (the slim binary links only what it reads),
// resolves to xdspb.Opaque: it prints as its "@type" alone.
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
