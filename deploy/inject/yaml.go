package inject

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// Result says what YAML did with one workload.
type Result struct {
	Kind, Name string
	// Injected is true when the sidecar was added; false for a workload
	// that did not ask for it or already had it.
	Injected bool
}

// templatePaths locates the pod template of each workload kind, as a list
// of object members from the document root.
var templatePaths = map[string][]string{
	"Pod":                   nil,
	"Deployment":            {"spec", "template"},
	"StatefulSet":           {"spec", "template"},
	"DaemonSet":             {"spec", "template"},
	"ReplicaSet":            {"spec", "template"},
	"ReplicationController": {"spec", "template"},
	"Job":                   {"spec", "template"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template"},
}

// YAML reads a multi-document YAML stream from r and writes it to w with
// every annotated workload injected (a v1 List's items too). Documents that
// are not injected, comments and separators are copied byte for byte;
// injected documents are re-serialized (keys sorted, comments dropped).
// It returns one Result per workload seen. On error nothing more is
// written after the documents already processed.
func YAML(r io.Reader, w io.Writer, cfg Config) ([]Result, error) {
	docs, seps, err := splitDocuments(r)
	if err != nil {
		return nil, err
	}
	var results []Result
	bw := bufio.NewWriter(w)
	for i, doc := range docs {
		out, res, err := document(doc, cfg)
		if err != nil {
			bw.Flush()
			return results, fmt.Errorf("inject: document %d: %w", i+1, err)
		}
		results = append(results, res...)
		bw.Write(out)
		if i < len(seps) {
			bw.WriteString(seps[i])
		}
	}
	return results, bw.Flush()
}

// splitDocuments splits at "---" lines, returning the documents and the
// separator lines between them (len(seps) == len(docs)-1).
func splitDocuments(r io.Reader) (docs [][]byte, seps []string, err error) {
	br := bufio.NewReader(r)
	var cur bytes.Buffer
	for {
		line, err := br.ReadString('\n')
		if t := strings.TrimRight(line, " \t\r\n"); t == "---" || strings.HasPrefix(t, "--- ") {
			docs, seps = append(docs, bytes.Clone(cur.Bytes())), append(seps, line)
			cur.Reset()
		} else {
			cur.WriteString(line)
		}
		if err == io.EOF {
			return append(docs, cur.Bytes()), seps, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("inject: read: %w", err)
		}
	}
}

// document injects one YAML document, returning it unchanged (same bytes)
// when there is nothing to do.
func document(doc []byte, cfg Config) ([]byte, []Result, error) {
	var obj map[string]any
	if err := yaml.Unmarshal(doc, &obj); err != nil {
		return nil, nil, fmt.Errorf("parse: %w", err)
	}
	if obj == nil {
		return doc, nil, nil
	}
	res, changed, err := object(obj, cfg)
	if err != nil || !changed {
		return doc, res, err
	}
	out, err := yaml.Marshal(obj)
	return out, res, err
}

// object injects obj in place, reporting whether it changed.
func object(obj map[string]any, cfg Config) ([]Result, bool, error) {
	kind, _ := obj["kind"].(string)
	if items, ok := obj["items"].([]any); ok && kind == "List" {
		var all []Result
		changed := false
		for _, it := range items {
			if m, ok := it.(map[string]any); ok {
				res, c, err := object(m, cfg)
				if err != nil {
					return nil, false, err
				}
				all, changed = append(all, res...), changed || c
			}
		}
		return all, changed, nil
	}
	path, ok := templatePaths[kind]
	if !ok {
		return nil, false, nil
	}
	name, _ := nested(obj, "metadata")["name"].(string)
	res := Result{Kind: kind, Name: name}
	tplObj := nested(obj, path...)
	if tplObj == nil {
		return nil, false, fmt.Errorf("%s %q: no pod template at %s", kind, name, strings.Join(path, "."))
	}
	injected, err := patchTemplate(tplObj, cfg)
	if err != nil {
		return nil, false, fmt.Errorf("%s %q: %w", kind, name, err)
	}
	res.Injected = injected
	return []Result{res}, injected, nil
}

// patchTemplate runs Template over the pod template tplObj (decoded YAML)
// and applies the difference to tplObj in place.
func patchTemplate(tplObj map[string]any, cfg Config) (bool, error) {
	var tpl corev1.PodTemplateSpec
	if err := remarshal(tplObj, &tpl); err != nil {
		return false, fmt.Errorf("pod template: %w", err)
	}
	if !Requested(tpl.Annotations) || Injected(&tpl.Spec) {
		return false, nil
	}
	out, err := Template(tpl, cfg)
	if err != nil {
		return false, err
	}
	var before, after any
	if err := remarshal(tpl, &before); err != nil {
		return false, err
	}
	if err := remarshal(out, &after); err != nil {
		return false, err
	}
	// Apply on a root of the subtree only: "metadata" and "spec" are the
	// members the patch touches, and tplObj is modified in place.
	_, err = Apply(tplObj, Diff(before, after))
	return err == nil, err
}

// nested returns the object at path under m, or nil.
func nested(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		next, ok := m[p].(map[string]any)
		if !ok {
			return nil
		}
		m = next
	}
	return m
}

func remarshal(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}
