package policies

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// docSeparator splits a YAML stream into documents.
var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// Parse decodes the policies in data: YAML or JSON holding one policy, a
// YAML stream of them ("---"), a list, or {"policies": [...]}. Fields are
// the protobuf JSON names (snake_case or lowerCamelCase); unknown fields
// are errors naming the policy's position. Parse does not validate.
func Parse(data []byte) ([]*shoalv1.AuthorizationPolicy, error) {
	var out []*shoalv1.AuthorizationPolicy
	for _, doc := range docSeparator.Split(string(data), -1) {
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("policies: invalid YAML: %w", err)
		}
		items, err := items(j)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			p := &shoalv1.AuthorizationPolicy{}
			if err := protojson.Unmarshal(it, p); err != nil {
				return nil, fmt.Errorf("policies: policy #%d in the input: %v", len(out)+1, err)
			}
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("policies: no policies found")
	}
	return out, nil
}

// items returns the policy objects of one JSON document.
func items(j []byte) ([]json.RawMessage, error) {
	j = bytes.TrimSpace(j)
	if len(j) == 0 || string(j) == "null" {
		return nil, nil
	}
	if j[0] == '[' {
		var list []json.RawMessage
		if err := json.Unmarshal(j, &list); err != nil {
			return nil, fmt.Errorf("policies: %w", err)
		}
		return list, nil
	}
	var wrap map[string]json.RawMessage
	if err := json.Unmarshal(j, &wrap); err != nil {
		return nil, fmt.Errorf("policies: %w", err)
	}
	if list, ok := wrap["policies"]; ok && len(wrap) == 1 {
		return items(list)
	}
	return []json.RawMessage{j}, nil
}
