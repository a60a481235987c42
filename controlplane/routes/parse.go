package routes

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// Parse decodes the routes in data, which is YAML or JSON holding one
// route, a YAML stream of routes (documents separated by "---"), a list of
// routes, or {"routes": [...]}. Fields are the protobuf JSON names, in
// snake_case or lowerCamelCase. Beyond protobuf JSON it accepts friendly
// strategy spellings (round_robin, least_connections, ip_hash, ...; see
// ParseStrategy) and Go duration strings ("500ms", "1m30s"). Unknown fields
// are errors. Errors are *FieldError with Doc set to the 1-based position
// of the route in data. Parse does not validate: call ValidateSet.
func Parse(data []byte) ([]*shoalv1.Route, error) {
	docs, err := splitDocuments(data)
	if err != nil {
		return nil, err
	}
	var items []any
	for _, doc := range docs {
		items = append(items, routeItems(doc)...)
	}
	if len(items) == 0 {
		return nil, errors.New("routes: no routes found")
	}
	out := make([]*shoalv1.Route, 0, len(items))
	for i, item := range items {
		r, err := decodeRoute(item)
		if err != nil {
			err.Doc = i + 1
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// splitDocuments returns the decoded JSON value of every non-empty
// document in data. Numbers stay json.Number so that no precision is lost.
func splitDocuments(data []byte) ([]any, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		if docs, err := decodeJSONStream(trimmed); err == nil {
			return docs, nil
		}
		// Not JSON: YAML flow style ({name: web}) also starts with '{'.
	}
	var docs []any
	for i, chunk := range splitYAML(data) {
		j, err := yaml.YAMLToJSON(chunk)
		if err != nil {
			return nil, &FieldError{Doc: i + 1, Reason: fmt.Sprintf("invalid YAML: %v", err)}
		}
		v, err := decodeJSONStream(j)
		if err != nil {
			return nil, &FieldError{Doc: i + 1, Reason: err.Error()}
		}
		docs = append(docs, v...)
	}
	return docs, nil
}

// decodeJSONStream decodes one or more concatenated JSON values, dropping
// nulls (empty YAML documents).
func decodeJSONStream(data []byte) ([]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var docs []any
	for {
		var v any
		err := dec.Decode(&v)
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		if v != nil {
			docs = append(docs, v)
		}
	}
}

// splitYAML splits a YAML stream at "---" lines (and drops "..." document
// end markers).
func splitYAML(data []byte) [][]byte {
	var chunks [][]byte
	var cur bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), len(data)+1)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "---" || strings.HasPrefix(line, "--- ") || strings.HasPrefix(line, "---\t"):
			chunks = append(chunks, bytes.Clone(cur.Bytes()))
			cur.Reset()
			if rest := strings.TrimSpace(line[3:]); rest != "" && !strings.HasPrefix(rest, "#") {
				cur.WriteString(rest + "\n") // "--- {name: web}" starts a document inline
			}
		case line == "...":
		default:
			cur.WriteString(line + "\n")
		}
	}
	return append(chunks, cur.Bytes())
}

// routeItems returns the route objects of one document: the document
// itself, its elements if it is a list, or its "routes" list.
func routeItems(doc any) []any {
	switch v := doc.(type) {
	case []any:
		return v
	case map[string]any:
		if list, ok := v["routes"].([]any); ok && len(v) == 1 {
			return list
		}
	}
	return []any{doc}
}

func decodeRoute(item any) (*shoalv1.Route, *FieldError) {
	r := &shoalv1.Route{}
	name := ""
	if m, ok := item.(map[string]any); ok {
		name, _ = m["name"].(string)
	}
	norm, ferr := normalizeMessage(item, r.ProtoReflect().Descriptor(), "")
	if ferr != nil {
		ferr.Route = name
		return nil, ferr
	}
	data, err := json.Marshal(norm)
	if err != nil {
		return nil, &FieldError{Route: name, Reason: err.Error()}
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(data, r); err != nil {
		return nil, &FieldError{Route: name, Reason: strings.TrimPrefix(err.Error(), "proto: ")}
	}
	return r, nil
}
