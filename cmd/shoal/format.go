//go:build !shoal_slim

package main

import (
	"bytes"
	"encoding/json"
	"io"

	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// protoJSON is how every command prints a protobuf message as JSON or
// YAML: the proto field names (snake_case, as route files are written;
// protojson reads both these and lowerCamelCase back), enums by name, and
// fields at their zero value left out.
var protoJSON = protojson.MarshalOptions{UseProtoNames: true}

// writeJSONOrYAML writes the JSON document data indented, or converted to
// YAML when format is "yaml".
func writeJSONOrYAML(w io.Writer, format string, data []byte) error {
	if format == "yaml" {
		y, err := yaml.JSONToYAML(data)
		if err != nil {
			return err
		}
		_, err = w.Write(y)
		return err
	}
	var b bytes.Buffer
	if err := json.Indent(&b, data, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := b.WriteTo(w)
	return err
}
